"""A simulated window (:class:`Scenario`) and its replay under one policy.

:func:`build_scenario` replays the simulated part of a trace with arrival times
scaled so the offered load is ``load`` x the cluster's capacity; :func:`run_policy`
runs it through a router and a scaler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from pipelines.simulate._trace import TraceData
from scheduler_hooks import ForecastBook
from scheduler_hooks.routing import make_router
from scheduler_hooks.scaling import make_scaler
from scheduler_hooks.sim import SimConfig, SimResult, Workload, simulate

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass
class Scenario:
    """A simulated window ready to replay under any policy.

    Attributes:
        workload: Arrivals (scaled to the load) and true service times.
        quantiles: Forecast quantiles ``(n, D, K)``.
        levels: Their levels.
        config: Cluster and behaviour.
        capacity_rps: Requests per second the cluster serves at full utilisation.
        slo_s: Latency objective, seconds.
        load: Offered load as a fraction of capacity.
    """

    workload: Workload
    quantiles: F64
    levels: tuple[float, ...]
    config: SimConfig
    capacity_rps: float
    slo_s: float
    load: float

    def book(self, seed: int, samples: int = 256) -> ForecastBook:
        """A fresh forecast book (same seed -> same random percentiles)."""
        table = self.quantiles
        return ForecastBook(self.levels, lambda ids: table[ids], samples=samples, seed=seed)


def build_scenario(
    trace: TraceData,
    work: F64,
    quantiles: F64,
    levels: Sequence[float],
    config: SimConfig,
    devices: Sequence[str],
    load: float,
    slo_s: float | None = None,
    limit: int | None = None,
) -> Scenario:
    """Scale the simulated rows' arrivals to ``load`` x capacity and assemble a scenario.

    Capacity (requests/s) = sum over replicas of slots / mean service time of the
    simulated requests on the replica's device type. Independent requests keep their
    trace order and relative gaps, compressed or stretched uniformly. Sessions start
    (their first call) evenly spaced, in trace order, at the rate that offers the
    load given their mean number of calls; later calls follow their session.
    ``slo_s`` defaults to 5 x the median service time on the fastest device type.
    """
    rows = np.flatnonzero(~trace.train)
    if limit is not None:
        rows = rows[:limit] if not trace.sessions else _whole_sessions(trace, rows, limit)
    sim = trace.subset(rows)
    w, q = work[rows], quantiles[rows]
    index = {d: i for i, d in enumerate(devices)}
    mean_work = w.mean(axis=0)
    capacity = sum(
        count * config.slots / float(mean_work[index[name]]) for name, count in config.cluster
    )
    rate = load * capacity
    if sim.sessions:
        roots = np.flatnonzero(sim.parent < 0)
        order = roots[np.argsort(sim.times[roots], kind="stable")]
        calls_per_session = sim.n / len(roots)
        arrival = np.full(sim.n, np.nan)
        arrival[order] = np.arange(len(order)) * calls_per_session / rate
    else:
        span = float(sim.times[-1] - sim.times[0]) or 1.0
        native = (sim.n - 1) / span
        arrival = (sim.times - sim.times[0]) * native / rate
    workload = Workload(
        arrival=np.nan_to_num(arrival, nan=0.0),
        parent=sim.parent,
        think=sim.think,
        work=w,
        devices=tuple(devices),
    )
    slo = slo_s if slo_s is not None else 5.0 * float(np.median(w.min(axis=1)))
    return Scenario(workload, q, tuple(levels), config, capacity, slo, load)


def _whole_sessions(trace: TraceData, rows: I64, limit: int) -> I64:
    """The first sessions among ``rows`` holding at most ``limit`` calls (at least one)."""
    roots = rows[trace.parent[rows] < 0]
    keep: list[int] = []
    owner = np.full(trace.n, -1, dtype=np.int64)
    for r in rows:
        owner[r] = r if trace.parent[r] < 0 else owner[trace.parent[r]]
    for root in roots:
        members = rows[owner[rows] == root]
        if keep and len(keep) + len(members) > limit:
            break
        keep.extend(int(m) for m in members)
    return np.asarray(sorted(keep), dtype=np.int64)


def router_options(router: str, quantile: float, percentiles: str) -> dict[str, Any]:
    """Constructor options of ``router``: ``tail_aware`` takes its level and draw mode."""
    return {"quantile": quantile, "percentiles": percentiles} if router == "tail_aware" else {}


def run_policy(
    scenario: Scenario,
    router: str,
    scaler: str = "none",
    *,
    seed: int = 0,
    quantile: float = 0.95,
    samples: int = 256,
    scaler_options: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    percentiles: str = "shared",
) -> SimResult:
    """Replay the scenario under one router and scaler (same seed -> same randomness).

    ``quantile`` and ``percentiles`` configure ``tail_aware`` (ignored by the others).
    """
    scaling = {"slo_s": scenario.slo_s, **(scaler_options or {})}
    return simulate(
        scenario.workload,
        replace(scenario.config, seed=seed),
        make_router(router, **router_options(router, quantile, percentiles)),
        make_scaler(scaler, **scaling),
        scenario.book(seed, samples),
        progress,
    )
