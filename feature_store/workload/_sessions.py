"""Workflows and their timing: arrivals on a daily cycle, calls chained one after another.

A workflow (an agentic task, a chat, a one-off request) has a class, a replica (device
type x model, fixed for the workflow) and ``k`` calls. Workflow arrivals form a Poisson
process whose rate follows the load curve's daily cycle. Call ``j + 1`` is submitted
when call ``j`` has completed plus a gap (tool run time, user think time), so latency
feeds back into the arrival times of later calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from feature_store.workload._latency import NoiseConfig, SpeedTable, cached_tokens, latencies
from feature_store.workload._load import LoadConfig, LoadCurve, diurnal

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def arrival_times(
    n: int, span_s: float, start: datetime, load: LoadConfig, rng: np.random.Generator
) -> FloatArray:
    """Sorted arrival times of ``n`` workflows over ``span_s`` seconds.

    The times are a Poisson process conditioned on ``n`` arrivals, with intensity
    proportional to :func:`~feature_store.workload._load.diurnal` (inverse-CDF method
    on a one-minute grid).

    Args:
        n: Number of arrivals.
        span_s: Length of the arrival window, seconds.
        start: Timezone-aware start of the window.
        load: Daily-cycle shape.
        rng: Random source.

    Returns:
        Seconds since ``start``, ascending.
    """
    grid = np.linspace(0.0, span_s, max(int(span_s // 60.0), 1) + 2)
    rate = diurnal(grid, start, load)
    cumulative = np.concatenate(([0.0], np.cumsum((rate[1:] + rate[:-1]) / 2 * np.diff(grid))))
    targets = np.sort(rng.random(n)) * cumulative[-1]
    return np.asarray(np.interp(targets, cumulative, grid), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class CallInputs:
    """What each call brings to the timing loop (arrays over calls, workflow-major).

    Attributes:
        replica: Replica index.
        input_tokens: Prompt tokens.
        prefix_tokens: Cacheable prefix tokens.
        output_tokens: Generated tokens.
        gap_s: Gap between this call's completion and the next call's submission.
    """

    replica: IntArray
    input_tokens: IntArray
    prefix_tokens: IntArray
    output_tokens: IntArray
    gap_s: FloatArray


@dataclass(frozen=True, slots=True)
class CallTimes:
    """Outcome of each call (arrays over calls, workflow-major).

    Attributes:
        submitted_s: Submission, seconds since the workload start.
        ttft_s: Time to first token, seconds.
        latency_s: End-to-end latency, seconds.
        cached_tokens: Prompt tokens served from the prefix cache.
        num_running: Requests running at submission.
        num_waiting: Requests waiting at submission.
        kv_cache_util: KV-cache utilisation at submission.
    """

    submitted_s: FloatArray
    ttft_s: FloatArray
    latency_s: FloatArray
    cached_tokens: IntArray
    num_running: IntArray
    num_waiting: IntArray
    kv_cache_util: FloatArray


def run_calls(
    starts: FloatArray,
    steps: IntArray,
    calls: CallInputs,
    speeds: SpeedTable,
    curve: LoadCurve,
    noise: NoiseConfig,
    rng: np.random.Generator,
) -> CallTimes:
    """Submit every call, step by step across all workflows at once.

    Args:
        starts: Arrival of each workflow (submission of its call 0), seconds.
        steps: Calls per workflow.
        calls: Per-call inputs, grouped by workflow in step order.
        speeds: Per-replica speeds.
        curve: The load curve.
        noise: Latency noise and cache parameters.
        rng: Random source.

    Returns:
        The outcome of every call, in the same order as ``calls``.
    """
    n = len(calls.replica)
    out = {k: np.zeros(n) for k in ("submitted", "ttft", "latency", "kv")}
    ints = {k: np.zeros(n, dtype=np.int64) for k in ("cached", "running", "waiting")}
    first = np.cumsum(steps) - steps
    t_next = starts.copy()
    for j in range(int(steps.max(initial=0))):
        alive = np.flatnonzero(steps > j)
        idx = first[alive] + j
        t, rep = t_next[alive], calls.replica[idx]
        load = curve.sample(t, rep, speeds.max_batch[rep], speeds.kv_capacity_seqs[rep], rng)
        cached = cached_tokens(
            calls.prefix_tokens[idx], calls.input_tokens[idx], load.kv_cache_util, noise, rng
        )
        ttft, latency = latencies(
            speeds,
            rep,
            calls.input_tokens[idx] - cached,
            calls.output_tokens[idx],
            load.num_running,
            load.num_waiting,
            load.kv_cache_util,
            noise,
            rng,
        )
        out["submitted"][idx], out["ttft"][idx], out["latency"][idx] = t, ttft, latency
        out["kv"][idx] = load.kv_cache_util
        ints["cached"][idx], ints["running"][idx] = cached, load.num_running
        ints["waiting"][idx] = load.num_waiting
        t_next[alive] = t + latency + calls.gap_s[idx]
    return CallTimes(
        submitted_s=out["submitted"],
        ttft_s=out["ttft"],
        latency_s=out["latency"],
        cached_tokens=ints["cached"],
        num_running=ints["running"],
        num_waiting=ints["waiting"],
        kv_cache_util=out["kv"],
    )
