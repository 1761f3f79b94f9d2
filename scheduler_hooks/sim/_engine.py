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
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from scheduler_hooks._book import ForecastBook
from scheduler_hooks._state import ReplicaState
from scheduler_hooks.routing import Router, RoutingContext
from scheduler_hooks.scaling import NoScaler, Scaler, ScalingView
from scheduler_hooks.sim._config import CapacityEvent, Completion, SimConfig
from scheduler_hooks.sim._result import SimResult
from scheduler_hooks.sim._run_state import (
    ARRIVE,
    CAPACITY,
    DONE,
    READY,
    SWAP,
    TICK,
    Live,
    RunState,
)
from scheduler_hooks.sim._workload import Workload


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
    _s: RunState = field(init=False, repr=False)

    def swap_book(self, at_s: float, book: ForecastBook) -> None:
        """Hand every policy ``book`` from ``at_s`` on (call during :meth:`run`).

        Forecasts of requests already queued or running come from the new book too (a
        scheduler re-asks the service); ``at_s`` must not lie before the current event.
        """
        self._s.books.append(book)
        self._s.push(at_s, SWAP, len(self._s.books) - 1)

    def run(self) -> SimResult:
        """Run to the last completion and return per-request outcomes.

        Raises:
            ValueError: A forecast-driven policy without a book; a cluster device type
                the workload does not have.
            RuntimeError: Events ran out with requests unfinished.
        """
        if (self.router.needs_forecasts or self.scaler.needs_forecasts) and self.book is None:
            raise ValueError("a forecast-driven policy needs a ForecastBook")
        self._s = RunState.start_of(self.workload, self.config)
        self._seed_events()
        now = 0.0
        while self._s.heap and self._s.done < self.workload.n:
            now, _, kind, a, b = heapq.heappop(self._s.heap)
            self._s.advance(now)
            self._dispatch(now, kind, a, b)
        if self._s.done < self.workload.n:
            left = self.workload.n - self._s.done
            raise RuntimeError(f"simulation stalled with {left} requests unfinished")
        return self._result(now)

    # --- events ---------------------------------------------------------------------
    def _seed_events(self) -> None:
        """The initial cluster, every session root's arrival, the first tick, the loss."""
        wl, cfg = self.workload, self.config
        device_index = {d: i for i, d in enumerate(wl.devices)}
        for name, count in cfg.cluster:
            for _ in range(count):
                self._add_replica(device_index[name], 0.0, ready=True)
        roots = np.flatnonzero(wl.parent < 0)
        for r in roots:
            self._s.push(float(wl.arrival[r]), ARRIVE, int(r))
        if not isinstance(self.scaler, NoScaler):
            self._s.push(float(wl.arrival[roots].min()), TICK, 0)
        if cfg.capacity_event is not None:
            self._s.push(cfg.capacity_event.at_s, CAPACITY, 0)

    def _dispatch(self, now: float, kind: int, a: int, b: int) -> None:
        if kind == ARRIVE:
            self._arrive(now, a)
        elif kind == DONE:
            if b == self._s.version[a]:
                self._finish(now, a)
        elif kind == READY:
            live = self._s.reps[a]
            if live.removed_at is None:  # else cancelled while cold-starting
                live.ready = True
                live.state.accepting = True
                self._s.mark(now)
        elif kind == TICK:
            self._tick(now)
        elif kind == SWAP:
            self.book = self._s.books[a]
        else:
            self._capacity(now)

    def _result(self, now: float) -> SimResult:
        """Close the books at ``now`` (the last completion)."""
        s = self._s
        s.mark(now)
        for live in s.reps:
            if live.removed_at is None:
                live.removed_at = now
        replica_seconds = sum(
            (live.removed_at if live.removed_at is not None else now) - live.added_at
            for live in s.reps
        )
        return SimResult(
            arrival=s.arrival,
            start=s.start,
            end=s.end,
            replica=s.replica,
            replica_device=np.array([r.state.device for r in s.reps], dtype=np.int64),
            replica_seconds=float(replica_seconds),
            timeline=tuple(s.timeline),
            restarts=s.restarts,
            devices=self.workload.devices,
            slots=self.config.slots,
        )

    def _add_replica(self, device: int, now: float, ready: bool) -> None:
        index = len(self._s.reps)
        name = f"{self.workload.devices[device]}#{index}"
        state = ReplicaState(device=device, slots=self.config.slots, name=name, accepting=ready)
        if self._s.degraded is not None and device in self._s.degraded[0]:
            state.speed = self._s.degraded[1]
        self._s.reps.append(Live(state=state, added_at=now, ready=ready))
        self._s.mark(now)
        if not ready:
            self._s.push(now + self.config.cold_start_s, READY, index)

    def _arrive(self, now: float, request: int) -> None:
        if math.isnan(self._s.arrival[request]):
            self._s.arrival[request] = now
            self._s.recent.append((now, request))
        self._route(now, request)

    def _route(self, now: float, request: int) -> None:
        candidates = [i for i, live in enumerate(self._s.reps) if live.state.accepting]
        states = [self._s.reps[i].state for i in candidates]
        ctx = RoutingContext(now=now, rng=self._s.rng, book=self.book, truth=self._s.truth)
        pick = candidates[self.router.choose(request, states, ctx)]
        rep = self._s.reps[pick].state
        self._s.replica[request] = pick
        if rep.busy < rep.slots:
            self._begin(now, pick, request)
        else:
            rep.queue.append(request)

    def _begin(self, now: float, index: int, request: int) -> None:
        rep = self._s.reps[index].state
        rep.running.append(request)
        rep.started.append(now)
        assert rep.busy <= rep.slots, "a replica serves more requests than its slots"
        self._s.start[request] = now
        self._s.end[request] = now + self.workload.work[request, rep.device] / rep.speed
        self._s.push(float(self._s.end[request]), DONE, request, int(self._s.version[request]))

    def _finish(self, now: float, request: int) -> None:
        index = int(self._s.replica[request])
        rep = self._s.reps[index].state
        k = rep.running.index(request)
        del rep.running[k]
        del rep.started[k]
        self._s.done += 1
        if self.book is not None:
            self.book.forget(request)
        if self.on_complete is not None:
            done = Completion(
                request=request,
                device=rep.device,
                replica=index,
                arrival_s=float(self._s.arrival[request]),
                start_s=float(self._s.start[request]),
                end_s=now,
            )
            self.on_complete(done)
        if rep.queue:
            self._begin(now, index, rep.queue.popleft())
        live = self._s.reps[index]
        if not rep.accepting and live.ready and rep.outstanding == 0 and live.removed_at is None:
            live.removed_at = now
            self._s.mark(now)
        child = int(self._s.child[request])
        if child >= 0:
            self._s.push(now + float(self.workload.think[child]), ARRIVE, child)
        if self.progress is not None and self._s.done % 500 == 0:
            self.progress(self._s.done)

    def _tick(self, now: float) -> None:
        window = self.config.rate_window_s
        while self._s.recent and self._s.recent[0][0] < now - window:
            self._s.recent.popleft()
        serving = [live.state for live in self._s.reps if live.state.accepting]
        pending = sum(1 for live in self._s.reps if not live.ready and live.removed_at is None)
        # at least one decision interval: at the first tick (the first arrival's
        # instant) the observed span is 0 and a rate over it would be unbounded
        since_first = now - float(np.nanmin(self._s.arrival))
        elapsed = min(window, max(since_first, self.config.scale_interval_s))
        view = ScalingView(
            now=now,
            replicas=serving,
            pending=pending,
            arrival_rate=len(self._s.recent) / elapsed,
            slots=self.config.slots,
            device=self._s.scale_device,
            book=self.book,
            recent=[r for _, r in self._s.recent],
            recent_arrivals=[t for t, _ in self._s.recent],
            utilization=self._s.utilization(now, self.config.rate_window_s),
            scale_down=self.config.scale_down,
        )
        want = self.scaler.desired(view)
        current = len(serving) + pending
        for _ in range(want - current):
            self._add_replica(self._s.scale_device, now, ready=False)
        if want < current:
            if self.config.scale_down != "least_loaded":
                self._drain(now, current - want)
            else:
                idle_first = sorted(
                    (live for live in self._s.reps if live.state.accepting),
                    key=lambda live: live.state.outstanding,
                )
                for live in idle_first[: min(current - want, len(idle_first) - 1)]:
                    live.state.accepting = False
                    if live.state.outstanding == 0:
                        live.removed_at = now
            self._s.mark(now)
        if self._s.done < self.workload.n:
            self._s.push(now + self.config.scale_interval_s, TICK, 0)

    def _drain(self, now: float, excess: int) -> None:
        """Cancel or drain ``excess`` replicas, cold-starting ones first (one keeps serving).

        Cold-starting replicas are cancelled on the spot, newest first; then serving ones
        drain (no new requests, gone when empty): the most recently added first
        (``newest``) or those with the fewest outstanding requests (``pending_first``).
        """
        pending = [r for r in self._s.reps if r.removed_at is None and not r.ready][::-1]
        serving = [r for r in self._s.reps if r.state.accepting]  # in order of addition
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
        serving = [i for i, live in enumerate(self._s.reps) if live.state.accepting]
        hit = min(round(event.fraction * len(serving)), len(serving) - 1)
        chosen: list[int] = (
            [int(i) for i in self._s.rng.choice(serving, size=hit, replace=False)]
            if hit > 0
            else []
        )
        orphans: list[int] = []
        for index in sorted(chosen):
            rep = self._s.reps[index].state
            if event.kind == "slow":
                self._set_speed(now, rep, event.speed)
                continue
            orphans.extend(rep.running)
            orphans.extend(rep.queue)
            for r in rep.running:
                self._s.version[r] += 1
                self._s.restarts[r] += 1
            rep.running.clear()
            rep.started.clear()
            rep.queue.clear()
            rep.accepting = False
            self._s.reps[index].removed_at = now
        self._s.mark(now)
        for r in orphans:
            self._route(now, r)

    def _set_speed(self, now: float, rep: ReplicaState, speed: float) -> None:
        """Running requests finish their remaining work at ``speed``."""
        for r in rep.running:
            rest = (self._s.end[r] - now) * rep.speed / speed
            self._s.end[r] = now + rest
            self._s.version[r] += 1
            self._s.push(float(self._s.end[r]), DONE, r, int(self._s.version[r]))
        rep.speed = speed

    def _degrade(self, now: float, event: CapacityEvent) -> None:
        names = event.devices or self.workload.devices
        hit = {i for i, d in enumerate(self.workload.devices) if d in names}
        self._s.degraded = (hit, event.speed)
        for live in self._s.reps:
            if live.removed_at is None and live.state.device in hit:
                self._set_speed(now, live.state, event.speed)
        self._s.mark(now)


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
