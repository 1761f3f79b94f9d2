"""Recalibrate remaining-time forecasts by calls done, relative to the start.

The Monte Carlo composition assumes a Gaussian copula with one shared latency factor
per task; real tasks drift in speed and have heavy-tailed calls, so the raw
remaining-time law gets too narrow (and sits too low) the more calls are done: on
held-out agentic runs the raw 10-90 interval covers 0.80 before the start but 0.74
after 50-60 calls. The fix is conformal in spirit: score every training task run *as
if held out* (its own task instance left out of the call-count model) at calls done
``0, every, 2 every, ...``, take the PIT value of its true remaining time under the raw
samples, and, per bucket of calls done, compare the PIT values' normal scores with
those of the first bucket (the start, where the composition is already calibrated on
held-out calls through the latency PIT map): the shift of their median and the ratio of
their 10-90 spread give the bucket's map (``remaining_pit``). A bucket's factors are
an average over its scored runs, so they estimate the curve at the bucket's mean
``log1p(calls done)`` (its knot, :func:`remaining_knots`);
:meth:`core.workflow.WorkflowModel.remaining_levels` interpolates the shift and ratio
linearly in ``log1p(calls done)`` between knots (constant beyond the ends) and reads a
forecast's samples at the levels that map gives: a piecewise-linear estimate of a
smooth curve instead of a step at each bucket edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr, ndtri  # type: ignore[import-untyped]

from core.workflow import Draws, WorkflowModel
from training.workflow._data import WorkflowData

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
#: Lower edges of the calls-done buckets with their own recalibration map.
REMAINING_BUCKETS: tuple[int, ...] = (0, 10, 20, 40, 60)
PIT_POINTS = 101


def task_calls(data: WorkflowData, task: str, n: int) -> tuple[F64, F64, list[str | None]]:
    """Call end times, latencies (NaN where missing) and commands of calls ``0 .. n - 1``."""
    mine = data.calls.loc[data.calls["task"] == task].drop_duplicates("step").set_index("step")
    steps = range(n)
    ends = mine["call_end_ts"].reindex(steps).to_numpy(dtype=np.float64)
    latencies = mine["latency_s"].reindex(steps).to_numpy(dtype=np.float64)
    commands = [c if isinstance(c, str) else None for c in mine["command"].reindex(steps)]
    return ends, latencies, commands


def remaining_truth(ends: F64, wall_s: float, n: int, k: int) -> float:
    """True remaining seconds after ``k`` calls: the task's wall time for ``k <= 1``."""
    if k <= 1:
        return wall_s
    return float(ends[n - 1] - ends[k - 1])


def remaining_pits(
    model: WorkflowModel,
    data: WorkflowData,
    embeddings: npt.NDArray[np.floating],
    endpoints: Mapping[str, Mapping[str, float | None]],
    draws: Draws,
    *,
    device: str,
    every: int = 3,
) -> tuple[F64, I64]:
    """PIT values of the training runs' true remaining times under raw forecasts.

    Each run is forecast with the runs of its own task instance left out of the
    call-count model, at calls done ``0, every, ...`` below its call count, with the
    latencies of its returned calls (the pace) and its pending command, exactly as a
    held-out task is scored.

    Returns:
        ``(pit, steps_done)``, one entry per (run, calls done) with a finite truth;
        PIT values in ``[0.5 / J, 1 - 0.5 / J]``.
    """
    instances = data.tasks["instance_id"].to_numpy()
    pits: list[float] = []
    steps: list[int] = []
    half = 0.5 / draws.samples
    for i, task in data.tasks.reset_index(drop=True).iterrows():
        sm, name, n = str(task["served_model"]), str(task["task"]), int(task["n_llm_calls"])
        same = instances == task["instance_id"]
        if sm not in model.spec.served_models or same.all():
            continue
        cdf = model.counts.cdf(np.asarray(embeddings)[int(str(i))], sm, exclude=same)
        tables = model.latency(sm, device, endpoints.get(name))
        ends, latencies, commands = task_calls(data, name, n)
        for k in range(0, n, every):
            truth = remaining_truth(ends, float(task["wall_s"]), n, k)
            if not np.isfinite(truth):
                continue
            _, samples, _ = model.sample_remaining(
                model.progress_cdf(cdf, k, commands),
                tables,
                draws,
                k,
                commands[k - 1] if k >= 1 else None,
                latencies[:k].tolist(),
            )
            pits.append(float(np.clip(np.mean(samples <= truth), half, 1.0 - half)))
            steps.append(k)
    return np.asarray(pits, dtype=np.float64), np.asarray(steps, dtype=np.int64)


def remaining_knots(steps_done: I64, buckets: Sequence[int] = REMAINING_BUCKETS) -> F64:
    """Per bucket of calls done, the mean ``log1p(calls done)`` of its scored runs.

    The knot where the bucket's map applies (``log1p`` of its lower edge when it has no
    values); strictly increasing, as the buckets do not overlap.

    >>> remaining_knots(np.array([0, 3, 12, 15]), (0, 10, 20)).round(3).tolist()
    [0.693, 2.669, 3.045]
    """
    edges = np.asarray(buckets)
    which = np.searchsorted(edges, steps_done, side="right") - 1
    x = np.log1p(np.asarray(steps_done, dtype=np.float64))
    return np.asarray(
        [
            x[which == b].mean() if (which == b).any() else np.log1p(edges[b])
            for b in range(len(edges))
        ],
        dtype=np.float64,
    )


def remaining_calibration(
    pit: F64, steps_done: I64, buckets: Sequence[int] = REMAINING_BUCKETS, min_count: int = 30
) -> F64:
    """Per bucket of calls done, a recalibration map on ``linspace(0, 1, 101)``.

    The PIT values of a bucket are turned into normal scores ``z``; with ``m_b`` their
    median and ``s_b`` their 10-90 range, and ``m_0``, ``s_0`` those of the first
    bucket with at least ``min_count`` values (the reference), bucket ``b`` maps level
    ``tau`` to ``Phi(m_b - m_0 + (s_b / s_0) Phi^-1(tau))``. Only the change relative to
    the reference is used: scored in-sample, the training runs sit off-centre as a
    whole (the latency recalibration is fitted on the predictor's held-out calls), and
    that offset does not carry to new tasks, while how the composition's error grows
    with calls done does. A bucket with fewer than ``min_count`` values reuses the
    previous bucket's map (the identity before the reference).

    Args:
        pit: PIT values in (0, 1).
        steps_done: Calls done of each PIT value.
        buckets: Lower edges of the buckets, increasing.
        min_count: Fewest PIT values for a bucket's own map.

    Returns:
        Shape ``(len(buckets), 101)``, each row increasing from 0 to 1.

    >>> z = np.linspace(-1.0, 1.0, 41)
    >>> u = ndtr(np.concatenate([z, 0.5 + 2.0 * z]))  # later: shifted by 0.5, twice as wide
    >>> rows = remaining_calibration(u, np.repeat([0, 20], 41), (0, 10))
    >>> rows[:, [10, 50, 90]].round(3).tolist()
    [[0.1, 0.5, 0.9], [0.02, 0.691, 0.999]]
    """
    grid = np.linspace(0.0, 1.0, PIT_POINTS)
    which = np.searchsorted(np.asarray(buckets), steps_done, side="right") - 1
    out = np.empty((len(buckets), PIT_POINTS))
    reference: tuple[float, float] | None = None
    shift, ratio = 0.0, 1.0
    for b in range(len(buckets)):
        z = ndtri(pit[which == b])
        if z.size >= min_count:
            lo, mid, hi = np.quantile(z, [0.1, 0.5, 0.9])
            reference = (float(mid), float(hi - lo)) if reference is None else reference
            shift, ratio = float(mid) - reference[0], float(hi - lo) / reference[1]
        out[b] = ndtr(shift + ratio * ndtri(grid))
    return out
