"""The mutable state of one simulation run, built in one place (:meth:`RunState.start`).

:class:`scheduler_hooks.sim.Simulator` keeps no per-run attributes of its own: every
array, the event heap, the replicas and the utilisation integrals live here, so a run
starts from a state that is complete and consistent, and the engine reads as events
applied to it.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from scheduler_hooks._book import ForecastBook
from scheduler_hooks._state import ReplicaState
from scheduler_hooks.sim._config import SimConfig
from scheduler_hooks.sim._workload import F64, Workload

I64 = npt.NDArray[np.int64]

#: Event kinds of the heap (``(time, seq, kind, a, b)`` tuples).
ARRIVE, DONE, READY, TICK, CAPACITY, SWAP = 0, 1, 2, 3, 4, 5


class OracleTruth:
    """True service times and completion times, for the oracle router only."""

    def __init__(self, work: F64, ends: F64) -> None:
        self._work, self._ends = work, ends

    def work(self, request: int, device: int) -> float:
        """True service time of ``request`` on device type ``device``, seconds."""
        return float(self._work[request, device])

    def end(self, request: int) -> float:
        """Scheduled completion of ``request`` (NaN before it starts), seconds."""
        return float(self._ends[request])


@dataclass
class Live:
    """A replica and its lifetime (``removed_at`` None while it exists)."""

    state: ReplicaState
    added_at: float
    removed_at: float | None = None
    ready: bool = True


@dataclass
class RunState:
    """Everything one run mutates.

    Attributes:
        arrival: First submission of each request, seconds (NaN until it arrives).
        start: Start of each request's (last) service, seconds.
        end: Scheduled or actual completion, seconds.
        replica: Replica index each request was routed to (-1: not yet).
        version: Bumped when a request's completion event is superseded (restart,
            speed change); stale ``DONE`` events carry an older version.
        restarts: Times each request restarted after its replica was removed.
        child: Next call of the same session (-1: none).
        truth: The oracle's view of ``work`` and ``end``.
        rng: Randomness of routers and capacity events (seeded by the config).
        scale_device: Device type index scale-ups add.
        heap: Pending events.
        seq: Tie-breaker of events at the same time (insertion order).
        books: Forecast books handed over by ``swap_book`` (by index).
        degraded: Degraded device types and their speed, once a ``degrade`` happened.
        reps: Every replica ever added, in order of addition.
        timeline: ``(time, replicas alive)`` at every change.
        recent: ``(arrival time, request)`` within the scaler's rate window.
        done: Completed requests.
        areas: ``(time, busy area, slot area)`` snapshots at scaler ticks.
        busy_area: Integral of busy slots over time, slot-seconds.
        slot_area: Integral of serving slots over time, slot-seconds.
        last: Time the integrals were advanced to, seconds.
    """

    arrival: F64
    start: F64
    end: F64
    replica: I64
    version: I64
    restarts: I64
    child: I64
    truth: OracleTruth
    rng: np.random.Generator
    scale_device: int
    heap: list[tuple[float, int, int, int, int]] = field(default_factory=list)
    seq: int = 0
    books: list[ForecastBook] = field(default_factory=list)
    degraded: tuple[set[int], float] | None = None
    reps: list[Live] = field(default_factory=list)
    timeline: list[tuple[float, int]] = field(default_factory=list)
    recent: deque[tuple[float, int]] = field(default_factory=deque)
    done: int = 0
    areas: deque[tuple[float, float, float]] = field(
        default_factory=lambda: deque([(0.0, 0.0, 0.0)])
    )
    busy_area: float = 0.0
    slot_area: float = 0.0
    last: float = 0.0

    @classmethod
    def start_of(cls, workload: Workload, config: SimConfig) -> RunState:
        """The state before the first event (no replicas, no events yet).

        Raises:
            ValueError: A cluster device type that is not a workload device.
        """
        device_index = {d: i for i, d in enumerate(workload.devices)}
        for name, _ in config.cluster:
            if name not in device_index:
                raise ValueError(
                    f"cluster device {name!r} not in workload devices {workload.devices}"
                )
        n = workload.n
        end = np.full(n, np.nan)
        child = np.full(n, -1, dtype=np.int64)
        has_parent = workload.parent >= 0
        child[workload.parent[has_parent]] = np.flatnonzero(has_parent)
        return cls(
            arrival=np.full(n, np.nan),
            start=np.full(n, np.nan),
            end=end,
            replica=np.full(n, -1, dtype=np.int64),
            version=np.zeros(n, dtype=np.int64),
            restarts=np.zeros(n, dtype=np.int64),
            child=child,
            truth=OracleTruth(workload.work, end),
            rng=np.random.default_rng(config.seed),
            scale_device=device_index[config.scale_device or config.cluster[0][0]],
        )

    def push(self, t: float, kind: int, a: int, b: int = 0) -> None:
        """Schedule event ``kind`` with arguments ``a``, ``b`` at ``t`` seconds."""
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, a, b))

    def count(self) -> int:
        """Replicas alive (serving, cold-starting or draining)."""
        return sum(1 for live in self.reps if live.removed_at is None)

    def mark(self, now: float) -> None:
        """Append the replica count at ``now`` to the timeline."""
        self.timeline.append((now, self.count()))

    def advance(self, now: float) -> None:
        """Integrate busy slots and serving slots up to ``now`` (time-averaged utilisation)."""
        dt = now - self.last
        if dt > 0:
            live = [r for r in self.reps if r.removed_at is None]
            self.busy_area += dt * sum(r.state.busy for r in live)
            self.slot_area += dt * sum(r.state.slots for r in live if r.ready)
            self.last = now

    def utilization(self, now: float, window_s: float) -> float | None:
        """Busy / serving slots over the last ``window_s`` seconds (from tick snapshots)."""
        self.areas.append((now, self.busy_area, self.slot_area))
        while len(self.areas) > 2 and self.areas[1][0] <= now - window_s:
            self.areas.popleft()
        _, busy0, slots0 = self.areas[0]
        slots = self.slot_area - slots0
        return (self.busy_area - busy0) / slots if slots > 0 else None
