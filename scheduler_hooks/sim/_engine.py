"""The discrete-event loop: a ``heapq`` of timed events over replica states.

Why not simpy: every routing decision needs a synchronous view of all replicas at
the arrival instant, and nothing here waits on resources in the simpy sense; a
plain heap of ``(time, seq, kind, ...)`` tuples does the same bookkeeping without a
generator per request (the 20k-request traces run in seconds, the Monte Carlo
router dominating).

Replica model (continuous batching approximated): a replica runs up to ``slots``
requests at once, each for its true service time on the replica's device type
(composed by the caller from device measurements at that batch size) divided by
the replica's speed; waiting requests start FCFS on the first free slot.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from scheduler_hooks._book import ForecastBook
from scheduler_hooks._state import ReplicaState
from scheduler_hooks.routing import Router, RoutingContext
from scheduler_hooks.scaling import NoScaler, Scaler, ScalingView
from scheduler_hooks.sim._result import SimResult
from scheduler_hooks.sim._workload import F64, Workload

_ARRIVE, _DONE, _READY, _TICK, _CAPACITY, _SWAP = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class CapacityEvent:
    """Capacity lost at one instant.

    Attributes:
        at_s: When, seconds.
        fraction: Fraction of the serving replicas hit (rounded, at least one survives);
            ignored by ``degrade``.
        kind: ``slow`` (they keep serving at ``speed`` x nominal), ``remove`` (they
            vanish; their running and queued requests are routed again and restart) or
            ``degrade`` (a degraded pool: every replica of the device types ``devices``,
            those serving, cold-starting and added later, serves at ``speed`` x nominal;
            running requests finish their remaining work at the new speed).
        speed: Speed multiplier of slowed or degraded replicas (``1 - speed`` of their
            capacity is lost).
        devices: Device types a ``degrade`` hits (empty: every device type).
    """

    at_s: float
    fraction: float = 0.71
    kind: Literal["slow", "remove", "degrade"] = "slow"
    speed: float = 0.25
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    """One finished request, as the ``on_complete`` hook sees it.

    Attributes:
        request: Request id.
        device: Device type index of the replica that served it.
        replica: Replica index.
        arrival_s: First submission, seconds.
        start_s: Start of its (last) service, seconds.
        end_s: Completion, seconds (the simulation's current time).
    """

    request: int
    device: int
    replica: int
    arrival_s: float
    start_s: float
    end_s: float

    @property
    def service_s(self) -> float:
        """Observed service time (end - start), seconds: what a latency predictor forecasts."""
        return self.end_s - self.start_s


@dataclass(frozen=True)
class SimConfig:
    """How the cluster behaves.

    Attributes:
        cluster: ``((device type, count), ...)``; device names must be workload devices.
        slots: Requests a replica serves at once.
        cold_start_s: Seconds from a scale-up decision until the replica serves.
        scale_interval_s: Seconds between scaler decisions.
        scale_device: Device type a scale-up adds (default: the cluster's first).
        scale_down: Which replicas a scale-down gives up: ``least_loaded`` (serving
            replicas with the fewest outstanding requests; cold-starting ones keep
            starting), ``pending_first`` (cold-starting replicas are cancelled first,
            newest first, then the least-loaded serving ones drain) or ``newest``
            (cold-starting ones first, then the most recently added serving ones, as a
            Kubernetes ReplicaSet does: the initial cluster goes last).
        rate_window_s: Window of the arrival-rate estimate given to scalers.
        capacity_event: Optional capacity loss.
        seed: Seed of randomized routers.
    """

    cluster: tuple[tuple[str, int], ...]
    slots: int = 1
    cold_start_s: float = 60.0
    scale_interval_s: float = 10.0
    scale_device: str | None = None
    scale_down: Literal["least_loaded", "newest", "pending_first"] = "least_loaded"
    rate_window_s: float = 60.0
    capacity_event: CapacityEvent | None = None
    seed: int = 0


class _OracleTruth:
    def __init__(self, work: F64, ends: F64) -> None:
        self._work, self._ends = work, ends

    def work(self, request: int, device: int) -> float:
        return float(self._work[request, device])

    def end(self, request: int) -> float:
        return float(self._ends[request])


@dataclass
class _Live:
    state: ReplicaState
    added_at: float
    removed_at: float | None = None
    ready: bool = True


@dataclass
class Simulator:
    """Replay a workload through a router (and a scaler) on a cluster.

    Args:
        workload: Requests and their true service times.
        config: Cluster and behaviour.
        router: The routing policy.
        scaler: The scaling policy (default: none).
        book: Forecast draws, required by forecast-driven policies.
        progress: Called with the number of completed requests now and then.
        on_complete: Called at every completion, in simulated-time order (e.g. a drift
            monitor fed by the simulation). It may call :meth:`swap_book`.
    """

    workload: Workload
    config: SimConfig
    router: Router
    scaler: Scaler = field(default_factory=NoScaler)
    book: ForecastBook | None = None
    progress: Callable[[int], None] | None = None
    on_complete: Callable[[Completion], None] | None = None

    def swap_book(self, at_s: float, book: ForecastBook) -> None:
        """Hand every policy ``book`` from ``at_s`` on (call during :meth:`run`).

        Forecasts of requests already queued or running come from the new book too (a
        scheduler re-asks the service); ``at_s`` must not lie before the current event.
        """
        self._books.append(book)
        self._push(at_s, _SWAP, len(self._books) - 1)

    def run(self) -> SimResult:
        """Run to the last completion and return per-request outcomes."""
        wl, cfg = self.workload, self.config
        if (self.router.needs_forecasts or self.scaler.needs_forecasts) and self.book is None:
            raise ValueError("a forecast-driven policy needs a ForecastBook")
        device_index = {d: i for i, d in enumerate(wl.devices)}
        for name, _ in cfg.cluster:
            if name not in device_index:
                raise ValueError(f"cluster device {name!r} not in workload devices {wl.devices}")
        n = wl.n
        self._arrival = np.full(n, np.nan)
        self._start = np.full(n, np.nan)
        self._end = np.full(n, np.nan)
        self._replica = np.full(n, -1, dtype=np.int64)
        self._version = np.zeros(n, dtype=np.int64)
        self._restarts = np.zeros(n, dtype=np.int64)
        self._child = np.full(n, -1, dtype=np.int64)
        has_parent = wl.parent >= 0
        self._child[wl.parent[has_parent]] = np.flatnonzero(has_parent)
        self._heap: list[tuple[float, int, int, int, int]] = []
        self._seq = 0
        self._books: list[ForecastBook] = []
        self._degraded: tuple[set[int], float] | None = None
        self._reps: list[_Live] = []
        self._timeline: list[tuple[float, int]] = []
        self._truth = _OracleTruth(wl.work, self._end)
        self._rng = np.random.default_rng(cfg.seed)
        self._recent: deque[tuple[float, int]] = deque()
        self._done = 0
        self._scale_device = device_index[cfg.scale_device or cfg.cluster[0][0]]
        for name, count in cfg.cluster:
            for _ in range(count):
                self._add_replica(device_index[name], 0.0, ready=True)
        roots = np.flatnonzero(wl.parent < 0)
        for r in roots:
            self._push(float(wl.arrival[r]), _ARRIVE, int(r))
        if not isinstance(self.scaler, NoScaler):
            self._push(float(wl.arrival[roots].min()), _TICK, 0)
        if cfg.capacity_event is not None:
            self._push(cfg.capacity_event.at_s, _CAPACITY, 0)
        now = 0.0
        self._areas: deque[tuple[float, float, float]] = deque([(0.0, 0.0, 0.0)])
        self._busy_area = self._slot_area = self._last = 0.0
        while self._heap and self._done < n:
            now, _, kind, a, b = heapq.heappop(self._heap)
            self._advance(now)
            if kind == _ARRIVE:
                self._arrive(now, a)
            elif kind == _DONE:
                if b == self._version[a]:
                    self._finish(now, a)
            elif kind == _READY:
                if self._reps[a].removed_at is not None:
                    continue  # cancelled while cold-starting
                self._reps[a].ready = True
                self._reps[a].state.accepting = True
                self._timeline.append((now, self._count()))
            elif kind == _TICK:
                self._tick(now)
            elif kind == _SWAP:
                self.book = self._books[a]
            else:
                self._capacity(now)
        if self._done < n:
            raise RuntimeError(f"simulation stalled with {n - self._done} requests unfinished")
        self._timeline.append((now, self._count()))
        for live in self._reps:
            if live.removed_at is None:
                live.removed_at = now
        replica_seconds = sum(
            (live.removed_at if live.removed_at is not None else now) - live.added_at
            for live in self._reps
        )
        return SimResult(
            arrival=self._arrival,
            start=self._start,
            end=self._end,
            replica=self._replica,
            replica_device=np.array([r.state.device for r in self._reps], dtype=np.int64),
            replica_seconds=float(replica_seconds),
            timeline=tuple(self._timeline),
            restarts=self._restarts,
            devices=wl.devices,
            slots=cfg.slots,
        )

    # --- events ---------------------------------------------------------------------
    def _push(self, t: float, kind: int, a: int, b: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, a, b))

    def _count(self) -> int:
        return sum(1 for live in self._reps if live.removed_at is None)

    def _add_replica(self, device: int, now: float, ready: bool) -> None:
        index = len(self._reps)
        name = f"{self.workload.devices[device]}#{index}"
        state = ReplicaState(device=device, slots=self.config.slots, name=name, accepting=ready)
        if self._degraded is not None and device in self._degraded[0]:
            state.speed = self._degraded[1]
        self._reps.append(_Live(state=state, added_at=now, ready=ready))
        self._timeline.append((now, self._count()))
        if not ready:
            self._push(now + self.config.cold_start_s, _READY, index)

    def _arrive(self, now: float, request: int) -> None:
        if math.isnan(self._arrival[request]):
            self._arrival[request] = now
            self._recent.append((now, request))
        self._route(now, request)

    def _route(self, now: float, request: int) -> None:
        candidates = [i for i, live in enumerate(self._reps) if live.state.accepting]
        states = [self._reps[i].state for i in candidates]
        ctx = RoutingContext(now=now, rng=self._rng, book=self.book, truth=self._truth)
        pick = candidates[self.router.choose(request, states, ctx)]
        rep = self._reps[pick].state
        self._replica[request] = pick
        if rep.busy < rep.slots:
            self._begin(now, pick, request)
        else:
            rep.queue.append(request)

    def _begin(self, now: float, index: int, request: int) -> None:
        rep = self._reps[index].state
        rep.running.append(request)
        rep.started.append(now)
        assert rep.busy <= rep.slots, "a replica serves more requests than its slots"
        self._start[request] = now
        self._end[request] = now + self.workload.work[request, rep.device] / rep.speed
        self._push(float(self._end[request]), _DONE, request, int(self._version[request]))

    def _finish(self, now: float, request: int) -> None:
        index = int(self._replica[request])
        rep = self._reps[index].state
        k = rep.running.index(request)
        del rep.running[k]
        del rep.started[k]
        self._done += 1
        if self.book is not None:
            self.book.forget(request)
        if self.on_complete is not None:
            done = Completion(
                request=request,
                device=rep.device,
                replica=index,
                arrival_s=float(self._arrival[request]),
                start_s=float(self._start[request]),
                end_s=now,
            )
            self.on_complete(done)
        if rep.queue:
            self._begin(now, index, rep.queue.popleft())
        live = self._reps[index]
        if not rep.accepting and live.ready and rep.outstanding == 0 and live.removed_at is None:
            live.removed_at = now
            self._timeline.append((now, self._count()))
        child = int(self._child[request])
        if child >= 0:
            self._push(now + float(self.workload.think[child]), _ARRIVE, child)
        if self.progress is not None and self._done % 500 == 0:
            self.progress(self._done)

    def _advance(self, now: float) -> None:
        """Integrate busy slots and serving slots over time (for time-averaged utilisation)."""
        dt = now - self._last
        if dt > 0:
            live = [r for r in self._reps if r.removed_at is None]
            self._busy_area += dt * sum(r.state.busy for r in live)
            self._slot_area += dt * sum(r.state.slots for r in live if r.ready)
            self._last = now

    def _utilization(self, now: float) -> float | None:
        """Busy / serving slots over the last ``rate_window_s`` (from tick snapshots)."""
        self._areas.append((now, self._busy_area, self._slot_area))
        while len(self._areas) > 2 and self._areas[1][0] <= now - self.config.rate_window_s:
            self._areas.popleft()
        _, busy0, slots0 = self._areas[0]
        slots = self._slot_area - slots0
        return (self._busy_area - busy0) / slots if slots > 0 else None

    def _tick(self, now: float) -> None:
        window = self.config.rate_window_s
        while self._recent and self._recent[0][0] < now - window:
            self._recent.popleft()
        serving = [live.state for live in self._reps if live.state.accepting]
        pending = sum(1 for live in self._reps if not live.ready and live.removed_at is None)
        # at least one decision interval: at the first tick (the first arrival's
        # instant) the observed span is 0 and a rate over it would be unbounded
        since_first = now - float(np.nanmin(self._arrival))
        elapsed = min(window, max(since_first, self.config.scale_interval_s))
        view = ScalingView(
            now=now,
            replicas=serving,
            pending=pending,
            arrival_rate=len(self._recent) / elapsed,
            slots=self.config.slots,
            device=self._scale_device,
            book=self.book,
            recent=[r for _, r in self._recent],
            recent_arrivals=[t for t, _ in self._recent],
            utilization=self._utilization(now),
            scale_down=self.config.scale_down,
        )
        want = self.scaler.desired(view)
        current = len(serving) + pending
        for _ in range(want - current):
            self._add_replica(self._scale_device, now, ready=False)
        if want < current:
            if self.config.scale_down != "least_loaded":
                self._drain(now, current - want)
            else:
                idle_first = sorted(
                    (live for live in self._reps if live.state.accepting),
                    key=lambda live: live.state.outstanding,
                )
                for live in idle_first[: min(current - want, len(idle_first) - 1)]:
                    live.state.accepting = False
                    if live.state.outstanding == 0:
                        live.removed_at = now
            self._timeline.append((now, self._count()))
        if self._done < self.workload.n:
            self._push(now + self.config.scale_interval_s, _TICK, 0)

    def _drain(self, now: float, excess: int) -> None:
        """Cancel or drain ``excess`` replicas, cold-starting ones first (one keeps serving).

        Cold-starting replicas are cancelled on the spot, newest first; then serving ones
        drain (no new requests, gone when empty): the most recently added first
        (``newest``) or those with the fewest outstanding requests (``pending_first``).
        """
        pending = [r for r in self._reps if r.removed_at is None and not r.ready][::-1]
        serving = [r for r in self._reps if r.state.accepting]  # in order of addition
        if self.config.scale_down == "newest":
            serving = serving[::-1]
        else:
            serving = sorted(serving, key=lambda r: r.state.outstanding)
        for rep in pending[:excess]:
            rep.removed_at = now
        for rep in serving[: min(max(excess - len(pending), 0), len(serving) - 1)]:
            rep.state.accepting = False
            if rep.state.outstanding == 0:
                rep.removed_at = now

    def _capacity(self, now: float) -> None:
        event = self.config.capacity_event
        assert event is not None
        if event.kind == "degrade":
            self._degrade(now, event)
            return
        serving = [i for i, live in enumerate(self._reps) if live.state.accepting]
        hit = min(round(event.fraction * len(serving)), len(serving) - 1)
        chosen: list[int] = (
            [int(i) for i in self._rng.choice(serving, size=hit, replace=False)] if hit > 0 else []
        )
        orphans: list[int] = []
        for index in sorted(chosen):
            rep = self._reps[index].state
            if event.kind == "slow":
                self._set_speed(now, rep, event.speed)
                continue
            orphans.extend(rep.running)
            orphans.extend(rep.queue)
            for r in rep.running:
                self._version[r] += 1
                self._restarts[r] += 1
            rep.running.clear()
            rep.started.clear()
            rep.queue.clear()
            rep.accepting = False
            self._reps[index].removed_at = now
        self._timeline.append((now, self._count()))
        for r in orphans:
            self._route(now, r)

    def _set_speed(self, now: float, rep: ReplicaState, speed: float) -> None:
        """Running requests finish their remaining work at ``speed``."""
        for r in rep.running:
            rest = (self._end[r] - now) * rep.speed / speed
            self._end[r] = now + rest
            self._version[r] += 1
            self._push(float(self._end[r]), _DONE, r, int(self._version[r]))
        rep.speed = speed

    def _degrade(self, now: float, event: CapacityEvent) -> None:
        names = event.devices or self.workload.devices
        hit = {i for i, d in enumerate(self.workload.devices) if d in names}
        self._degraded = (hit, event.speed)
        for live in self._reps:
            if live.removed_at is None and live.state.device in hit:
                self._set_speed(now, live.state, event.speed)
        self._timeline.append((now, self._count()))


def simulate(
    workload: Workload,
    config: SimConfig,
    router: Router,
    scaler: Scaler | None = None,
    book: ForecastBook | None = None,
    progress: Callable[[int], None] | None = None,
    on_complete: Callable[[Completion], None] | None = None,
) -> SimResult:
    """Run one simulation (see :class:`Simulator`)."""
    return Simulator(
        workload, config, router, scaler or NoScaler(), book, progress, on_complete
    ).run()
