"""Score a workflow model on held-out task runs.

* ``composition``: the task wall time forecast before the task starts, by the
  distributional composition and by the two point compositions (a point forecast is
  scored as the same value at every level);
* ``call_count``: the call-count law against the empirical training distribution;
* ``tool_time``: tool-time quantiles by command kind against the pooled ones;
* ``remaining``: for tasks still running after ``k`` calls (given the latencies and
  commands of their returned calls), the 10-90 interval of the remaining time (mean
  width, coverage, misses below and above), the mean pinball, and the same interval
  of the raw (not recalibrated) composition (``raw_*``), per ``k``;
* ``cohorts``: the same 10-90 interval for fixed cohorts of task runs (those still
  running after ``c`` calls) at every depth ``0..c`` of the SAME runs, as counts so
  folds pool exactly (:func:`cohort_curves`); :func:`coverage_pvalue` tests a count
  against a nominal coverage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from core.workflow import Draws, WorkflowModel, command_kind, count_quantiles
from training import metrics
from training.workflow._calibrate import remaining_truth, task_calls
from training.workflow._data import WorkflowData

F64 = npt.NDArray[np.float64]
EVAL_LEVELS: tuple[float, ...] = (0.1, 0.5, 0.9, 0.95, 0.99)
REMAINING_STEPS: tuple[int, ...] = (0, 5, 10, 20, 30, 40, 50, 60, 80, 100, 120)
#: Cohorts of the remaining-time curve: task runs still running after this many calls.
COHORTS: tuple[int, ...] = (20, 40, 80)


def _scores(y: F64, q: F64, levels: F64) -> dict[str, Any]:
    keys = [metrics.level_key(v) for v in levels]
    per = metrics.pinball(y, q, levels)
    cov = metrics.coverage(y, q)
    return {
        "mean_pinball": float(per.mean()),
        "pinball": dict(zip(keys, per.tolist(), strict=True)),
        "coverage": dict(zip(keys, cov.tolist(), strict=True)),
    }


def evaluate_workflows(
    model: WorkflowModel,
    train: WorkflowData,
    test: WorkflowData,
    embeddings: npt.NDArray[np.floating],
    endpoints: Mapping[str, Mapping[str, float | None]],
    draws: Draws,
    *,
    device: str = "deepseek-api",
    steps: Sequence[int] = REMAINING_STEPS,
    cohorts: Sequence[int] = COHORTS,
    on_task: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Score ``model`` on the task runs of ``test``.

    Args:
        model: The fitted workflow model.
        train: Its training data (for the empirical baselines).
        test: Held-out calls and task runs (no instance in ``train``).
        embeddings: Task-text embeddings of ``test.tasks`` rows.
        endpoints: Endpoint features at each test task run's start, by ``task``.
        draws: Common random numbers.
        device: Device of the calls.
        steps: Calls done at which remaining-time forecasts are scored.
        cohorts: Cohort depths of :func:`cohort_curves` (each must be in ``steps``).
        on_task: Progress callback, once per test task run.

    Returns:
        A JSON-ready dict (see the module doc for the keys).
    """
    levels = np.asarray(EVAL_LEVELS)
    tasks = test.tasks[test.tasks["served_model"].isin(model.spec.served_models)]
    rows: list[dict[str, Any]] = []
    for i, task in tasks.iterrows():
        cdf = model.count_cdf(embeddings[int(str(i))], str(task["served_model"]))
        rows.append(_task_row(model, test, task, cdf, endpoints, draws, device, steps))
        if on_task is not None:
            on_task()
    scored = [r for r in rows if "total" in r]
    return {
        "tasks": len(scored),
        "levels": list(EVAL_LEVELS),
        **_upfront_scores(scored, train, levels),
        "tool_time": tool_time_scores(model, test),
        "remaining": _remaining_curve(rows, steps, levels),
        "cohorts": cohort_curves([r["by_k"] for r in rows], cohorts, steps, levels),
        "rho": model.spec.rho,
    }


def _task_row(
    model: WorkflowModel,
    test: WorkflowData,
    task: Any,
    cdf: F64,
    endpoints: Mapping[str, Mapping[str, float | None]],
    draws: Draws,
    device: str,
    steps: Sequence[int],
) -> dict[str, Any]:
    """One task run's forecasts and truths.

    Returns:
        ``wall_s`` and ``n`` (calls), ``by_k`` (calls done -> (remaining truth in
        seconds, remaining quantiles, raw remaining quantiles) where the truth is
        finite) and, when step 0 is scored, ``total`` (the up-front composition) and
        ``count_q`` (call-count quantiles at the evaluation levels).
    """
    sm, name, n = str(task["served_model"]), str(task["task"]), int(task["n_llm_calls"])
    tables = model.latency(sm, device, endpoints.get(name))
    ends, latencies, commands = task_calls(test, name, n)
    row: dict[str, Any] = {"wall_s": float(task["wall_s"]), "n": n, "by_k": {}}
    for k in steps:
        if k >= n:
            continue
        out = model.compose(
            cdf,
            tables,
            draws,
            EVAL_LEVELS,
            steps_done=k,
            pending_command=commands[k - 1] if k >= 1 else None,
            latencies_s=latencies[:k].tolist(),
            commands=commands,
        )
        truth = remaining_truth(ends, float(task["wall_s"]), n, k)
        if np.isfinite(truth):
            row["by_k"][k] = (truth, out["remaining_s"]["quantiles"], out["remaining_raw_s"])
        if k == 0:
            row["total"] = out
            row["count_q"] = count_quantiles(cdf, np.asarray(EVAL_LEVELS)).astype(np.float64)
    return row


def _upfront_scores(
    scored: list[dict[str, Any]], train: WorkflowData, levels: F64
) -> dict[str, Any]:
    """``composition`` and ``call_count`` scores of the forecasts made before each task ran."""
    y = np.array([r["wall_s"] for r in scored])
    dist = np.array([r["total"]["total_s"]["quantiles"] for r in scored])
    means = np.array([r["total"]["sum_of_means_s"] for r in scored])
    p90s = np.array([r["total"]["sum_of_p90_s"] for r in scored])
    n_true = np.array([r["n"] for r in scored], dtype=np.float64)
    counts_q = np.array([r["count_q"] for r in scored])
    train_counts = train.tasks["n_llm_calls"].to_numpy(dtype=np.float64)
    empirical = np.tile(np.quantile(train_counts, levels), (len(scored), 1))
    return {
        "composition": {
            "distributional": _scores(y, dist, levels),
            "sum_of_means": _scores(y, np.tile(means[:, None], (1, levels.size)), levels),
            "sum_of_p90": _scores(y, np.tile(p90s[:, None], (1, levels.size)), levels),
        },
        "call_count": {
            "tailcast": _scores(n_true, counts_q, levels),
            "empirical": _scores(n_true, empirical, levels),
        },
    }


def tool_time_scores(model: WorkflowModel, test: WorkflowData) -> dict[str, Any]:
    """Held-out tool times: quantiles by command kind vs pooled (kind known)."""
    levels = np.asarray(EVAL_LEVELS)
    rows = test.calls[test.calls["tool_s"].notna()]
    y = rows["tool_s"].to_numpy(dtype=np.float64)
    kinds = [command_kind(c if isinstance(c, str) else None) for c in rows["command"]]
    by_kind = np.array([model.tools.quantiles(levels, kind) for kind in kinds])
    pooled = np.tile(model.tools.quantiles(levels), (y.size, 1))
    return {
        "calls": int(y.size),
        "by_kind": _scores(y, by_kind.reshape(y.size, levels.size), levels),
        "pooled": _scores(y, pooled.reshape(y.size, levels.size), levels),
    }


def _remaining_curve(
    rows: list[dict[str, Any]], steps: Sequence[int], levels: F64
) -> dict[str, list[float]]:
    lo, hi = int(np.argmin(np.abs(levels - 0.1))), int(np.argmin(np.abs(levels - 0.9)))
    curve: dict[str, list[float]] = {
        "steps_done": [],
        "tasks": [],
        "width_10_90_s": [],
        "coverage_10_90": [],
        "below_10": [],
        "above_90": [],
        "mean_pinball": [],
        "median_remaining_s": [],
        "raw_width_10_90_s": [],
        "raw_coverage_10_90": [],
        "raw_above_90": [],
    }
    for k in steps:
        pairs = [r["by_k"][k] for r in rows if k in r["by_k"]]
        if len(pairs) < 3:
            continue
        y = np.array([p[0] for p in pairs])
        q = np.array([p[1] for p in pairs])
        curve["steps_done"].append(float(k))
        curve["tasks"].append(float(len(pairs)))
        curve["width_10_90_s"].append(float(np.mean(q[:, hi] - q[:, lo])))
        curve["coverage_10_90"].append(float(np.mean((y >= q[:, lo]) & (y <= q[:, hi]))))
        curve["below_10"].append(float(np.mean(y < q[:, lo])))
        curve["above_90"].append(float(np.mean(y > q[:, hi])))
        curve["mean_pinball"].append(metrics.mean_pinball(y, q, levels))
        curve["median_remaining_s"].append(float(np.median(y)))
        raw = np.array([p[2] for p in pairs])
        curve["raw_width_10_90_s"].append(float(np.mean(raw[:, hi] - raw[:, lo])))
        curve["raw_coverage_10_90"].append(float(np.mean((y >= raw[:, lo]) & (y <= raw[:, hi]))))
        curve["raw_above_90"].append(float(np.mean(y > raw[:, hi])))
    return curve


def cohort_curves(
    by_k: Sequence[Mapping[int, tuple[Any, ...]]],
    cohorts: Sequence[int],
    steps: Sequence[int],
    levels: F64,
) -> dict[str, dict[str, list[float]]]:
    """Remaining-time interval of fixed cohorts of task runs, depth by depth.

    Cohort ``c`` holds the task runs scored at every depth of ``steps`` up to ``c``
    (so still running after ``c`` calls); each depth ``k <= c`` is scored on the same
    runs, which isolates how one run's forecast sharpens as its calls complete (the
    all-runs curve mixes populations: the runs alive late are the long ones).

    Args:
        by_k: Per task run, depth ``k`` (calls done) -> ``(truth_s, quantiles_s, ...)``
            with the remaining time in seconds and its quantiles at ``levels``.
        cohorts: Cohort depths ``c`` (calls); one not in ``steps`` is left out.
        steps: Depths scored (calls); those ``<= c`` make cohort ``c``'s curve.
        levels: Quantile levels of the forecasts (must include 0.1 and 0.9).

    Returns:
        ``{str(c): {"steps_done", "tasks", "width_10_90_s", "inside_10_90",
        "below_q90"}}`` with per depth the number of runs, their mean 10-90 width (s),
        and the COUNTS of runs inside [q0.1, q0.9] and at or below q0.9. Cohorts with
        fewer than 3 runs are left out.
    """
    lo, hi = int(np.argmin(np.abs(levels - 0.1))), int(np.argmin(np.abs(levels - 0.9)))
    out: dict[str, dict[str, list[float]]] = {}
    for c in cohorts:
        if c not in steps:
            continue
        depths = [k for k in steps if k <= c]
        members = [r for r in by_k if all(k in r for k in depths)]
        if len(members) < 3:
            continue
        curve: dict[str, list[float]] = {
            "steps_done": [],
            "tasks": [],
            "width_10_90_s": [],
            "inside_10_90": [],
            "below_q90": [],
        }
        for k in depths:
            y = np.array([float(r[k][0]) for r in members])
            q = np.array([np.asarray(r[k][1], dtype=np.float64) for r in members])
            curve["steps_done"].append(float(k))
            curve["tasks"].append(float(len(members)))
            curve["width_10_90_s"].append(float(np.mean(q[:, hi] - q[:, lo])))
            curve["inside_10_90"].append(float(np.sum((y >= q[:, lo]) & (y <= q[:, hi]))))
            curve["below_q90"].append(float(np.sum(y <= q[:, hi])))
        out[str(c)] = curve
    return out


def coverage_pvalue(hits: int, n: int, nominal: float) -> float:
    """Two-sided exact binomial p-value of ``hits`` covered out of ``n`` vs ``nominal``.

    Counts are task runs (not calls). Runs of one repeated task instance are not
    independent, so the p-value is optimistic about the effective sample size.
    """
    from scipy.stats import binomtest  # type: ignore[import-untyped]

    return float(binomtest(hits, n, nominal, alternative="two-sided").pvalue)


def bonferroni(pvalues: Sequence[float]) -> list[float]:
    """Bonferroni-adjusted p-values: each times the number of tests, capped at 1."""
    m = len(pvalues)
    return [min(1.0, m * p) for p in pvalues]
