"""Simulator hooks for the capacity-loss scenario: degrade events, on_complete, book swaps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scheduler_hooks import ForecastBook
from scheduler_hooks._state import ReplicaState
from scheduler_hooks.routing import Router, RoutingContext, make_router
from scheduler_hooks.scaling import Scaler, ScalingView
from scheduler_hooks.sim import CapacityEvent, Completion, SimConfig, Simulator, Workload, simulate

LEVELS = np.array([0.1, 0.5, 0.9])
DEVICES = ("a100", "h100")


def steady(n: int, gap: float, work: float) -> Workload:
    """``n`` requests every ``gap`` seconds, ``work`` seconds on a100, half on h100."""
    arrival = np.asarray(np.arange(n) * gap, dtype=np.float64)
    return Workload.independent(arrival, np.tile([work, work / 2], (n, 1)), DEVICES)


class Fixed(Scaler):
    """Wants ``count`` replicas from ``after_s`` on (a real scaler with its cooldown)."""

    name = "fixed"

    def __init__(self, count: int, after_s: float) -> None:
        super().__init__(min_replicas=1, max_replicas=8, cooldown_s=0.0, stabilization_s=0.0)
        self.count, self.after_s = count, after_s

    def target(self, view: ScalingView) -> int:
        return self.count if view.now >= self.after_s else len(view.replicas) + view.pending


class BookSpy(Router):
    """Routes to the first replica and records which book each request was routed with."""

    name = "book_spy"

    def __init__(self) -> None:
        self.seen: list[ForecastBook | None] = []

    def choose(self, request: int, replicas: Sequence[ReplicaState], ctx: RoutingContext) -> int:
        self.seen.append(ctx.book)
        return 0


def test_degrade_slows_the_pool_and_replicas_added_later() -> None:
    workload = steady(40, 10.0, 4.0)
    config = SimConfig(
        cluster=(("a100", 1),),
        cold_start_s=5.0,
        scale_interval_s=10.0,
        capacity_event=CapacityEvent(100.0, kind="degrade", speed=0.5, devices=("a100",)),
    )
    result = simulate(workload, config, make_router("round_robin"), Fixed(2, 200.0))
    service = result.end - result.start
    assert np.allclose(service[workload.arrival < 100.0], 4.0)
    assert np.allclose(service[workload.arrival >= 100.0], 8.0)  # both replicas at half speed
    assert set(result.replica[workload.arrival >= 300.0].tolist()) == {0, 1}


def test_degrade_reschedules_running_requests() -> None:
    workload = steady(1, 10.0, 10.0)
    config = SimConfig(
        cluster=(("h100", 1),), capacity_event=CapacityEvent(3.0, kind="degrade", speed=0.25)
    )
    result = simulate(workload, config, make_router("round_robin"))
    # 5 s of h100 work: 3 s done at nominal speed, the last 2 s at speed 0.25
    assert result.end[0] == 3.0 + 2.0 / 0.25


def test_on_complete_sees_every_completion_in_time_order() -> None:
    workload = steady(30, 1.0, 3.0)
    seen: list[Completion] = []
    config = SimConfig(cluster=(("a100", 2),))
    result = simulate(workload, config, make_router("least_loaded"), on_complete=seen.append)
    assert sorted(c.request for c in seen) == list(range(30))
    assert [c.end_s for c in seen] == sorted(c.end_s for c in seen)
    assert all(c.service_s == 3.0 and c.device == 0 for c in seen)
    assert all(result.end[c.request] == c.end_s for c in seen)


def test_swap_book_hands_policies_the_new_book_from_its_time() -> None:
    workload = steady(20, 1.0, 0.5)
    table = np.ones((20, 2, 3)) * np.array([0.4, 0.5, 0.6])
    old = ForecastBook(LEVELS, lambda ids: table[ids], samples=8)
    new = ForecastBook(LEVELS, lambda ids: 2 * table[ids], samples=8)
    spy = BookSpy()
    sim = Simulator(workload, SimConfig(cluster=(("a100", 1),)), spy, book=old)

    def swap_once(done: Completion) -> None:
        if done.request == 4:
            sim.swap_book(done.end_s + 5.0, new)  # 9.5 s: requests 10.. see the new book

    sim.on_complete = swap_once
    sim.run()
    assert [b is new for b in spy.seen] == [False] * 10 + [True] * 10


def test_newest_scale_down_cancels_cold_starts_and_keeps_the_first_replicas() -> None:
    workload = steady(60, 5.0, 2.0)

    class UpThenDown(Scaler):
        name = "up_then_down"

        def target(self, view: ScalingView) -> int:
            return 5 if view.now < 15.0 else 2

    scaler = UpThenDown(min_replicas=1, max_replicas=8, cooldown_s=0.0, stabilization_s=0.0)
    config = SimConfig(
        cluster=(("a100", 2),),
        cold_start_s=60.0,
        scale_device="h100",
        scale_down="newest",
    )
    result = simulate(workload, config, make_router("least_loaded"), scaler)
    assert len(result.replica_device) == 5  # three h100 were added ...
    assert set(result.replica.tolist()) <= {0, 1}  # ... and cancelled before they served
    assert result.timeline[-1][1] == 2


def test_scalers_see_the_arrival_rate_over_at_least_one_decision_interval() -> None:
    workload = steady(30, 2.0, 1.0)  # 0.5 requests/s from t = 0

    class RateSpy(Scaler):
        name = "rate_spy"

        def __init__(self) -> None:
            super().__init__(min_replicas=1, max_replicas=8, cooldown_s=0.0, stabilization_s=0.0)
            self.rates: list[tuple[float, float]] = []

        def target(self, view: ScalingView) -> int:
            self.rates.append((view.now, view.arrival_rate))
            return len(view.replicas) + view.pending

    spy = RateSpy()
    config = SimConfig(cluster=(("a100", 1),), scale_interval_s=10.0, rate_window_s=20.0)
    simulate(workload, config, make_router("least_loaded"), spy)
    # first tick at t = 0 sees one arrival over one interval (not over 0 s),
    # then the rate over the time since the first arrival, then over the window
    assert spy.rates[:4] == [(0.0, 0.1), (10.0, 0.6), (20.0, 0.55), (30.0, 0.55)]
