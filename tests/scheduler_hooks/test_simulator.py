"""Simulator conservation: every request once, slots respected, work conserved, queueing sane."""

from __future__ import annotations

import numpy as np
import pytest

from scheduler_hooks import ForecastBook
from scheduler_hooks.routing import make_router
from scheduler_hooks.scaling import NoScaler, Scaler, ScalingView, UtilizationScaler
from scheduler_hooks.sim import CapacityEvent, SimConfig, SimResult, Workload, simulate
from scheduler_hooks.sim._workload import parse_cluster

LEVELS = np.array([0.1, 0.5, 0.9])
DEVICES = ("a100", "h100")


def synthetic(n: int = 400, seed: int = 0, rate: float = 1.0) -> tuple[Workload, np.ndarray]:
    """Poisson arrivals, lognormal service; h100 1.5x faster; forecasts = true +- noise."""
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / rate, n))
    base = rng.lognormal(0.5, 0.8, n)
    work = np.stack([base * 1.5, base], axis=1)
    spread = np.array([0.6, 1.0, 1.6])
    quantiles = work[:, :, None] * spread[None, None, :]
    return Workload.independent(arrival, work, DEVICES), quantiles


def book_for(quantiles: np.ndarray, seed: int = 0) -> ForecastBook:
    return ForecastBook(LEVELS, lambda ids: quantiles[ids], samples=128, seed=seed)


def max_concurrency(result: SimResult, replica: int) -> int:
    mine = result.replica == replica
    events = sorted(
        [(t, 1) for t in result.start[mine]] + [(t, -1) for t in result.end[mine]],
        key=lambda e: (e[0], e[1]),
    )
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


@pytest.mark.parametrize(
    "router",
    ["random", "round_robin", "po2", "least_loaded", "predicted_mean", "tail_aware", "oracle"],
)
@pytest.mark.parametrize("slots", [1, 3])
def test_every_request_completes_once_within_slots(router: str, slots: int) -> None:
    workload, quantiles = synthetic()
    config = SimConfig(cluster=parse_cluster("a100:3,h100:2"), slots=slots, seed=1)
    result = simulate(workload, config, make_router(router), book=book_for(quantiles))
    assert np.all(np.isfinite(result.end))
    assert np.all(result.arrival <= result.start)
    assert np.all(result.start < result.end)
    # each request served for exactly its true work on the device it ran on
    device = result.replica_device[result.replica]
    served = result.end - result.start
    np.testing.assert_allclose(served, workload.work[np.arange(workload.n), device], rtol=1e-9)
    for replica in range(5):
        assert max_concurrency(result, replica) <= slots
    assert result.replica_seconds == pytest.approx(5 * float(np.max(result.end)))


def test_same_seed_same_outcome() -> None:
    workload, quantiles = synthetic()
    config = SimConfig(cluster=parse_cluster("a100:2,h100:1"), seed=4)
    runs = [
        simulate(workload, config, make_router(r), book=book_for(quantiles))
        for r in ("po2", "po2", "tail_aware", "tail_aware")
    ]
    np.testing.assert_array_equal(runs[0].end, runs[1].end)
    np.testing.assert_array_equal(runs[2].end, runs[3].end)


def test_mm1_queue_matches_theory() -> None:
    # One replica, Poisson arrivals at 0.5/s, exponential service of mean 1 s: M/M/1
    # with rho = 0.5 has mean time in system 1 / (mu - lambda) = 2 s. Little's law:
    # time-average number in system = lambda x mean latency.
    rng = np.random.default_rng(0)
    n = 40_000
    arrival = np.cumsum(rng.exponential(2.0, n))
    work = rng.exponential(1.0, n)[:, None]
    result = simulate(
        Workload.independent(arrival, work, ("a100",)),
        SimConfig(cluster=(("a100", 1),)),
        make_router("round_robin"),
    )
    assert result.latency.mean() == pytest.approx(2.0, rel=0.05)
    horizon = float(result.end.max())
    times = np.concatenate([result.arrival, result.end])
    steps = np.concatenate([np.ones(n), -np.ones(n)])
    order = np.argsort(times, kind="stable")
    in_system = np.cumsum(steps[order])
    area = float(np.sum(in_system[:-1] * np.diff(times[order])))
    assert area / horizon == pytest.approx(n / horizon * result.latency.mean(), rel=1e-6)


def test_sessions_wait_for_the_previous_call_plus_tool_time() -> None:
    work = np.array([[2.0], [3.0], [1.0], [4.0]])
    workload = Workload(
        arrival=np.array([0.0, 0.0, 1.0, 0.0]),
        parent=np.array([-1, 0, -1, 2]),
        think=np.array([0.0, 0.5, 0.0, 2.0]),
        work=work,
        devices=("a100",),
    )
    result = simulate(workload, SimConfig(cluster=(("a100", 2),)), make_router("round_robin"))
    assert result.arrival.tolist() == [0.0, 2.5, 1.0, 4.0]
    assert result.end.tolist() == [2.0, 5.5, 2.0, 8.0]
    with pytest.raises(ValueError, match="parent must come before"):
        Workload(np.zeros(2), np.array([1, -1]), np.zeros(2), np.ones((2, 1)), ("a100",))


def test_capacity_loss_removes_or_slows_replicas() -> None:
    workload, _ = synthetic(n=600, rate=1.2)
    cluster = parse_cluster("a100:4,h100:3")
    base = simulate(workload, SimConfig(cluster=cluster), make_router("least_loaded"))
    at = float(workload.arrival[300])
    removed = simulate(
        workload,
        SimConfig(cluster=cluster, capacity_event=CapacityEvent(at, 0.71, "remove")),
        make_router("least_loaded"),
    )
    assert np.all(np.isfinite(removed.end))
    assert removed.timeline[-1][1] == 7 - round(0.71 * 7)
    late = workload.arrival >= at
    assert removed.latency[late].mean() > 2 * base.latency[late].mean()
    slowed = simulate(
        workload,
        SimConfig(cluster=cluster, capacity_event=CapacityEvent(at, 0.71, "slow", speed=0.25)),
        make_router("least_loaded"),
    )
    assert np.all(np.isfinite(slowed.end))
    assert slowed.restarts.sum() == 0
    on_slow = (slowed.start >= at) & (slowed.end - slowed.start > 1.01 * workload.work.max(axis=1))
    assert on_slow.any()


def test_utilization_scaler_adds_replicas_after_cold_start() -> None:
    workload, _ = synthetic(n=500, rate=2.0)
    config = SimConfig(cluster=(("a100", 1),), cold_start_s=30.0, scale_interval_s=5.0)
    fixed = simulate(workload, config, make_router("least_loaded"), NoScaler())
    scaled = simulate(
        workload,
        config,
        make_router("least_loaded"),
        UtilizationScaler(max_replicas=8, cooldown_s=10.0),
    )
    assert np.all(np.isfinite(scaled.end))
    assert max(count for _, count in scaled.timeline) > 1
    assert scaled.latency.mean() < fixed.latency.mean() / 2
    # replicas added later start serving only after their cold start
    first_start = {r: scaled.start[scaled.replica == r].min() for r in range(1, 4)}
    assert all(t >= 30.0 for t in first_start.values())
    assert scaled.replica_seconds > fixed.replica_seconds


def test_forecast_policies_need_a_book() -> None:
    workload, _ = synthetic(n=10)
    with pytest.raises(ValueError, match="ForecastBook"):
        simulate(workload, SimConfig(cluster=(("a100", 1),)), make_router("tail_aware"))
    with pytest.raises(ValueError, match="not in workload devices"):
        simulate(workload, SimConfig(cluster=(("l4", 1),)), make_router("po2"))


def test_parse_cluster_rejects_malformed_parts() -> None:
    assert parse_cluster("A100:4,h100:2") == (("a100", 4), ("h100", 2))
    for bad in ("a100", "a100:0", "a100:4;h100:2", ""):
        with pytest.raises(ValueError, match="bad cluster part"):
            parse_cluster(bad)


def test_scale_down_keeps_one_replica_serving_while_others_cold_start() -> None:
    # Bursty start then silence: the scaler asks for more replicas, then for fewer
    # while the new ones are still cold; at least one replica must keep serving.
    arrival = np.concatenate([np.linspace(0.0, 5.0, 40), np.linspace(200.0, 400.0, 20)])
    work = np.full((60, 1), 2.0)
    workload = Workload.independent(arrival, work, ("a100",))
    config = SimConfig(cluster=(("a100", 2),), cold_start_s=100.0, scale_interval_s=5.0)
    scaler = UtilizationScaler(min_replicas=1, max_replicas=6, cooldown_s=0.0)
    result = simulate(workload, config, make_router("least_loaded"), scaler)
    assert np.all(np.isfinite(result.end))
    assert min(count for _, count in result.timeline) >= 1


class _Recorder(Scaler):
    name = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[float | None] = []

    def target(self, view: ScalingView) -> int:
        self.seen.append(view.utilization)
        return len(view.replicas)


def test_scalers_see_time_averaged_utilization() -> None:
    # one replica busy 2 s out of every 4 s: half utilised over any 60 s window
    arrival = np.arange(0.0, 400.0, 4.0)
    workload = Workload.independent(arrival, np.full((len(arrival), 1), 2.0), ("a100",))
    recorder = _Recorder()
    config = SimConfig(cluster=(("a100", 1),), scale_interval_s=10.0, rate_window_s=60.0)
    simulate(workload, config, make_router("po2"), recorder)
    steady = [u for u in recorder.seen[7:-2] if u is not None]
    assert len(steady) > 20
    assert np.allclose(steady, 0.5, atol=0.04)
