"""Fit a :class:`core.workflow.WorkflowModel` from task runs, calls and a latency predictor.

* Call count: each training run's kernel (a normal bump of ``bandwidth`` in log calls,
  discretized on ``1 .. M``) and its task-text embedding (:func:`count_kernels`).
* Tool time: quantiles of ``tool_s`` pooled and per command kind with at least
  ``min_kind`` runs (:func:`tool_tables`).
* Per-call latency: the served model's median context (input and cached tokens) at each
  step (:func:`step_profile`); the PIT values of held-out training calls under the
  profile forecasts give the recalibration map and the within-task correlation ``rho``
  (:func:`latency_calibration`).
* Remaining time: with the latency part fitted, the training runs are forecast as if
  held out at every few calls done, and the PIT values of their true remaining times
  give one recalibration map per bucket of calls done
  (:mod:`training.workflow._calibrate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.predictor import Predictor
from core.quantiles import cdf_rows
from core.workflow import COUNT_TEXT, WorkflowModel, WorkflowSpec, command_kind, draw
from training.workflow._calibrate import (
    REMAINING_BUCKETS,
    remaining_calibration,
    remaining_knots,
    remaining_pits,
)
from training.workflow._data import WorkflowData

F64 = npt.NDArray[np.float64]
TOOL_POINTS = 200
#: Command substrings that start an agent's wrap-up: mini-swe-agent writes its patch
#: (``git diff > patch.txt``) and shows it; a median of 3 calls follow on the agentic runs.
WRAPUP_MARKERS: tuple[str, ...] = ("git diff", "patch.txt")
PIT_POINTS = 101


def max_calls_for(counts: npt.ArrayLike, bandwidth: float) -> int:
    """Support ``M`` of the call-count law: 4 kernel widths above the largest count."""
    return int(np.ceil(float(np.max(counts)) * np.exp(4.0 * bandwidth))) + 1


def count_kernels(counts: npt.ArrayLike, bandwidth: float, max_calls: int) -> F64:
    """Each run's call-count kernel on ``1 .. max_calls``, shape ``(n, M)``, rows sum to 1.

    >>> count_kernels([2], 0.0, 3).tolist()
    [[0.0, 1.0, 0.0]]
    """
    from scipy.special import ndtr  # type: ignore[import-untyped]

    y = np.log(np.asarray(counts, dtype=np.float64))
    n = np.arange(1, max_calls + 1)
    if bandwidth == 0:
        out = np.zeros((y.shape[0], max_calls))
        out[np.arange(y.shape[0]), np.clip(np.rint(np.exp(y)).astype(int), 1, max_calls) - 1] = 1
        return out
    edges = np.log(np.concatenate([n - 0.5, [max_calls + 0.5]]))
    edges[0] = -np.inf
    cdf = ndtr((edges[None, :] - y[:, None]) / bandwidth)
    out = np.diff(cdf, axis=1)
    return np.asarray(out / out.sum(axis=1, keepdims=True), dtype=np.float64)


def tool_tables(calls: pd.DataFrame, min_kind: int = 30) -> tuple[F64, dict[str, F64]]:
    """Tool-time quantiles (s) at levels ``(h + 0.5) / H``: pooled and by command kind."""
    grid = (np.arange(TOOL_POINTS) + 0.5) / TOOL_POINTS
    rows = calls[calls["tool_s"].notna()]
    pooled = np.quantile(rows["tool_s"].to_numpy(dtype=np.float64), grid)
    kinds = rows["command"].map(lambda c: command_kind(c if isinstance(c, str) else None))
    by_kind = {
        str(kind): np.quantile(group.to_numpy(dtype=np.float64), grid)
        for kind, group in rows["tool_s"].groupby(kinds)
        if len(group) >= min_kind and str(kind).isidentifier()
    }
    return pooled, by_kind


def step_profile(calls: pd.DataFrame, max_calls: int, min_calls: int = 5) -> F64:
    """Median (input, cached) tokens of call ``s``, ``s = 0 .. M - 1``, shape ``(M, 2)``.

    Steps with fewer than ``min_calls`` calls carry the last well-measured step forward.
    """
    out = np.full((max_calls, 2), np.nan)
    stats = calls.groupby("step")[["prompt_tokens", "cached_tokens"]].agg(["median", "size"])
    for step, row in stats.iterrows():
        s = int(step)  # type: ignore[call-overload]
        if 0 <= s < max_calls and row[("prompt_tokens", "size")] >= min_calls:
            out[s] = [row[("prompt_tokens", "median")], row[("cached_tokens", "median")]]
    last = np.array([np.nanmedian(calls["prompt_tokens"]), np.nanmedian(calls["cached_tokens"])])
    for s in range(max_calls):
        if np.isnan(out[s]).any():
            out[s] = last
        last = out[s]
    return out


def wrapup_pmf(
    data: WorkflowData, markers: tuple[str, ...], bandwidth: float, max_calls: int
) -> F64 | None:
    """``P(D + 1 = d)``, ``d = 1 .. M``: calls after a run's first wrap-up call.

    ``D = N - 1 - s`` for the first call ``s`` whose command contains one of ``markers``;
    the law is the mean of the runs' count kernels of ``D + 1`` (as the call count's).
    ``None`` without markers or without a run that issued one.

    >>> calls = pd.DataFrame({"task": ["a", "a", "a", "a"], "step": [0, 1, 2, 3],
    ...                       "command": ["ls", "git diff", "cat p", "echo done"]})
    >>> tasks = pd.DataFrame({"task": ["a"], "n_llm_calls": [4]})
    >>> wrapup_pmf(WorkflowData(calls, tasks), ("git diff",), 0.0, 4).tolist()
    [0.0, 0.0, 1.0, 0.0]
    """
    if not markers:
        return None
    commands = data.calls["command"].map(lambda c: c if isinstance(c, str) else "")
    hit = commands.map(lambda c: any(m in c for m in markers))
    first = data.calls.loc[hit].groupby("task")["step"].min()
    counts = data.tasks.set_index("task")["n_llm_calls"].reindex(first.index)
    after = (counts - 1 - first).dropna().to_numpy(dtype=np.float64)
    after = after[after >= 0]
    if after.size == 0:
        return None
    return np.asarray(count_kernels(after + 1.0, bandwidth, max_calls).mean(axis=0))


def latency_calibration(
    model: WorkflowModel,
    calls: pd.DataFrame,
    tasks: pd.DataFrame,
    endpoints: Mapping[str, Mapping[str, float | None]],
    device: str,
) -> tuple[F64, float]:
    """PIT map and within-task correlation from held-out calls (``calls.held_out``).

    Returns:
        ``(pit_map, rho)``: the PIT values' quantiles at ``linspace(0, 1, 101)`` and the
        intra-class correlation of their normal scores within a task (>= 0).
    """
    from scipy.special import ndtri

    served = dict(zip(tasks["task"], tasks["served_model"], strict=True))
    rows = calls[calls["held_out"] & calls["latency_s"].gt(0) & calls["task"].isin(served)]
    levels = np.asarray(model.predictor.spec.levels, dtype=np.float64)
    pits: list[F64] = []
    groups: list[F64] = []
    for task, group in rows.groupby("task"):
        sm = served[str(task)]
        if sm not in model.spec.served_models:
            continue
        values = model.step_values(sm, device, endpoints.get(str(task)))
        steps = np.minimum(group["step"].to_numpy(dtype=np.int64), values.shape[0] - 1)
        y = group["latency_s"].to_numpy(dtype=np.float64)
        p = cdf_rows(levels, values[steps], y[:, None], lower=0.0)[:, 0]
        pits.append(p)
        groups.append(np.full(p.shape[0], len(groups), dtype=np.float64))
    if not pits:
        return np.linspace(0.0, 1.0, PIT_POINTS), 0.0
    pit = np.concatenate(pits)
    pit_map = np.quantile(pit, np.linspace(0.0, 1.0, PIT_POINTS))
    ranks = (np.argsort(np.argsort(pit)) + 0.5) / pit.shape[0]
    return pit_map, intraclass_correlation(ndtri(ranks), np.concatenate(groups))


def intraclass_correlation(z: F64, group: F64) -> float:
    """One-way ANOVA ICC(1) of ``z`` by ``group``, clipped to [0, 0.95].

    >>> g = np.repeat([0.0, 1.0, 2.0], 4)
    >>> intraclass_correlation(np.repeat([-1.0, 0.0, 1.0], 4), g)
    0.95
    """
    frame = pd.DataFrame({"z": z, "g": group})
    stats = frame.groupby("g")["z"].agg(["mean", "size", "var"])
    k, n = len(stats), len(frame)
    if k < 2 or n <= k:
        return 0.0
    grand = frame["z"].mean()
    msb = float((stats["size"] * (stats["mean"] - grand) ** 2).sum() / (k - 1))
    msw = float((stats["var"].fillna(0.0) * (stats["size"] - 1)).sum() / (n - k))
    n0 = (n - float((stats["size"] ** 2).sum()) / n) / (k - 1)
    icc = (msb - msw) / (msb + (n0 - 1) * msw) if msb + (n0 - 1) * msw > 0 else 0.0
    return float(np.clip(icc, 0.0, 0.95))


def fit_workflow_model(
    data: WorkflowData,
    predictor: Predictor,
    embeddings: npt.NDArray[np.floating],
    endpoints: Mapping[str, Mapping[str, float | None]],
    *,
    device: str = "deepseek-api",
    bandwidth: float = 0.1,
    k: int = 10,
    shrink: float = 0.5,
    boost: float = 2.0,
    pace: bool = False,
    wrapup_markers: tuple[str, ...] = WRAPUP_MARKERS,
    remaining_buckets: tuple[int, ...] = REMAINING_BUCKETS,
    calibration_every: int = 3,
    calibration_samples: int = 1000,
    seed: int = 0,
    metadata: Mapping[str, str] | None = None,
) -> WorkflowModel:
    """Fit the workflow model.

    Args:
        data: Training calls and task runs; ``calls.held_out`` marks the calls the
            predictor was not fitted on (used for the latency calibration).
        predictor: The per-call latency predictor.
        embeddings: Task-text embeddings of ``data.tasks`` rows (``COUNT_TEXT``).
        endpoints: Endpoint features at each task run's start, by ``task``.
        device: Device of the calls.
        bandwidth: Call-count kernel width, log calls.
        k: Nearest runs weighted up.
        shrink: Weight of the text-blind part.
        boost: Same-served-model weight multiplier.
        pace: Condition future calls on the observed latencies of the returned ones.
        wrapup_markers: Command substrings that start the wrap-up (:func:`wrapup_pmf`; empty:
            the text law at every step).
        remaining_buckets: Lower edges of the calls-done buckets of the remaining-time
            recalibration (empty: none); each bucket's map applies at its knot and is
            interpolated in ``log1p(calls done)`` in between (:func:`remaining_knots`).
        calibration_every: The training runs are scored every this many calls done.
        calibration_samples: Monte Carlo samples per calibration forecast.
        seed: Seed of the calibration's common random numbers.
        metadata: Provenance.
    """
    draft, m = _uncalibrated(
        data, predictor, embeddings, bandwidth, wrapup_markers, (k, shrink, boost, pace), metadata
    )
    pit_map, rho = latency_calibration(draft, data.calls, data.tasks, endpoints, device)
    arrays = {**draft.arrays, "pit_map": pit_map}
    spec = draft.spec.model_copy(update={"rho": rho})
    if not remaining_buckets:
        return WorkflowModel(spec, arrays, predictor)
    raw = WorkflowModel(spec, arrays, predictor)
    draws = draw(calibration_samples, 2 * m, seed)
    pit, steps = remaining_pits(
        raw, data, embeddings, endpoints, draws, device=device, every=calibration_every
    )
    arrays["remaining_pit"] = remaining_calibration(pit, steps, remaining_buckets)
    knots = tuple(float(x) for x in remaining_knots(steps, remaining_buckets))
    spec = spec.model_copy(
        update={"remaining_buckets": tuple(remaining_buckets), "remaining_knots": knots}
    )
    return WorkflowModel(spec, arrays, predictor)


def _uncalibrated(
    data: WorkflowData,
    predictor: Predictor,
    embeddings: npt.NDArray[np.floating],
    bandwidth: float,
    wrapup_markers: tuple[str, ...],
    weighting: tuple[int, float, float, bool],
    metadata: Mapping[str, str] | None,
) -> tuple[WorkflowModel, int]:
    """The model before any calibration (identity PIT map, ``rho`` unset) and its max calls.

    Args:
        data: Training calls and task runs.
        predictor: The per-call latency predictor.
        embeddings: Task-text embeddings of ``data.tasks`` rows.
        bandwidth: Call-count kernel width, log calls.
        wrapup_markers: Command substrings that start the wrap-up.
        weighting: ``(k, shrink, boost, pace)`` of :func:`fit_workflow_model`.
        metadata: Provenance.
    """
    k, shrink, boost, pace = weighting
    tasks, calls = data.tasks, data.calls
    counts = tasks["n_llm_calls"].to_numpy(dtype=np.float64)
    m = max_calls_for(counts, bandwidth)
    pooled, by_kind = tool_tables(calls)
    served_models = tuple(sorted(set(tasks["served_model"]) & set(calls["model"].astype(str))))
    arrays: dict[str, Any] = {
        "count_embeddings": np.asarray(embeddings, dtype=np.float32),
        "count_kernels": count_kernels(counts, bandwidth, m),
        "tool_pooled": pooled,
        **{f"tool_{kind}": table for kind, table in by_kind.items()},
        **{f"profile_{sm}": step_profile(calls[calls["model"] == sm], m) for sm in served_models},
        "pit_map": np.linspace(0.0, 1.0, PIT_POINTS),
    }
    wrapup = wrapup_pmf(data, wrapup_markers, bandwidth, m)
    if wrapup is not None:
        arrays["wrapup_pmf"] = wrapup
    spec = WorkflowSpec(
        served_models=served_models,
        run_served_models=tuple(str(s) for s in tasks["served_model"]),
        text=COUNT_TEXT,
        k=k,
        shrink=shrink,
        boost=boost,
        bandwidth=bandwidth,
        tool_kinds=tuple(sorted(by_kind)),
        pace=pace,
        wrapup_markers=tuple(wrapup_markers) if "wrapup_pmf" in arrays else (),
        metadata=dict(metadata or {}),
    )
    return WorkflowModel(spec, arrays, predictor), m
