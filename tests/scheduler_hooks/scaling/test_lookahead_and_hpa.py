"""The forecast scaler's look-ahead and the utilisation baseline's HPA rule, on built views."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from scheduler_hooks import ForecastBook, ReplicaState
from scheduler_hooks.scaling import ForecastScaler, ScalingView, UtilizationScaler, make_scaler
from scheduler_hooks.scaling._lookahead import Lookahead

LEVELS = np.array([0.05, 0.5, 0.95])


def view(replicas: list[ReplicaState], now: float = 100.0, **kw: object) -> ScalingView:
    base: dict[str, object] = {"pending": 0, "arrival_rate": 0.0, "slots": 1, "device": 0}
    base.update(kw)
    return ScalingView(now, replicas, **base)  # type: ignore[arg-type]


def book(table: np.ndarray) -> ForecastBook:
    return ForecastBook(LEVELS, lambda ids: table[ids], samples=256, seed=0)


def test_lookahead_added_replicas_serve_after_the_cold_start() -> None:
    paths = 3
    busy = np.full((1, 1, paths), 100.0)  # one replica busy for 100 s
    times = np.array([[0.0, 50.0]] * paths)
    work = np.full((paths, 2), 10.0)
    la = Lookahead(busy, np.zeros((0, 1, paths)), times, np.full(paths, 2), work, 30.0)
    one, two = la.latency_quantile([1, 2], current=1, quantile=1.0)
    assert one == pytest.approx(110.0)  # the first waits 100 s for the busy replica
    # a second replica serves from 30 s: only the arrival at 50 s counts, served at once
    assert two == pytest.approx(10.0)
    pending = np.full((1, 1, paths), 30.0)  # the same replica already cold-starting
    la = Lookahead(busy, pending, times, np.full(paths, 2), work, 30.0)
    assert la.latency_quantile([2], current=2, quantile=1.0)[0] == pytest.approx(40.0)


def test_lookahead_scale_down_drops_the_least_loaded_replica() -> None:
    paths = 2
    serving = np.array([[[0.0, 0.0]], [[20.0, 20.0]]])  # idle first, then busy until 20 s
    times = np.array([[1.0], [1.0]])
    la = Lookahead(
        serving,
        np.zeros((0, 1, paths)),
        times,
        np.ones(paths, dtype=np.int64),
        np.full((paths, 1), 5.0),
        60.0,
    )
    one, two = la.latency_quantile([1, 2], current=2, quantile=0.5)
    assert (one, two) == (pytest.approx(24.0), pytest.approx(5.0))


def test_forecast_lookahead_scales_for_backlog_and_rate_and_down_when_idle() -> None:
    steady = np.tile(np.array([[[1.9, 2.0, 2.1]]]), (60, 1, 1))  # every request ~2 s
    scaler = ForecastScaler(max_replicas=16, cooldown_s=0.0, slo_s=10.0, horizon_s=20.0)
    idle = [ReplicaState(0) for _ in range(4)]
    assert scaler.target(view(idle, now=0.0, recent=[0], book=book(steady))) == 1
    # 1 running + 29 queued x 2 s on one replica: queued requests stay where they are
    # (as in the simulator), so more replicas only help the arrivals
    backlog = [ReplicaState(0, running=[0], started=[95.0], queue=deque(range(1, 30)))]
    fresh = ForecastScaler(max_replicas=16, cooldown_s=0.0, slo_s=10.0, horizon_s=20.0)
    assert fresh.target(view(backlog, recent=[], book=book(steady))) == 1  # no arrival seen
    # the first scaler remembers request 0 (1 per 100 s): an arrival may come and wait
    assert scaler.target(view(backlog, recent=[], book=book(steady))) == 2
    # 30 arrivals in the first minute: 0.5 requests/s of ~2 s work
    assert scaler.target(view(backlog, recent=list(range(30)), book=book(steady))) == 3
    # a steady 2 requests/s of 2 s work is 4 busy replicas: more are needed for the SLO
    scaler = ForecastScaler(max_replicas=16, cooldown_s=0.0, slo_s=3.0, horizon_s=20.0)
    for t in range(0, 400, 10):  # let its own rate window fill
        recent = list(range(max(0, 2 * t - 120), 2 * t))
        scaler.target(
            view(
                idle,
                now=float(t),
                arrival_rate=2.0,
                recent=recent,
                book=book(np.tile(np.array([[[1.9, 2.0, 2.1]]]), (800, 1, 1))),
            )
        )
    assert scaler._rate(view(idle, now=400.0, recent=list(range(680, 800)))) == pytest.approx(
        2.0, rel=0.05
    )


def test_forecast_lookahead_remembers_when_its_scale_ups_serve() -> None:
    steady = np.tile(np.array([[[1.9, 2.0, 2.1]]]), (60, 1, 1))
    scaler = ForecastScaler(max_replicas=8, cooldown_s=0.0, slo_s=10.0, horizon_s=20.0)
    backlog = [ReplicaState(0, running=[0], started=[95.0], queue=deque(range(1, 30)))]
    assert scaler.desired(view(backlog, recent=list(range(30)), book=book(steady))) == 4
    assert scaler._ready == [120.0, 120.0, 120.0]
    again = view(backlog, now=110.0, pending=3, recent=list(range(30)), book=book(steady))
    la = scaler._lookahead(again, 20.0)
    assert la.pending[:, 0, 0].tolist() == [10.0, 10.0, 10.0]


def test_forecast_lookahead_serves_arrivals_at_each_replicas_device_speed() -> None:
    # every request ~2 s on device 0 (the scale-up type) and ~8 s on device 1
    table = np.tile(np.array([[[1.9, 2.0, 2.1], [7.6, 8.0, 8.4]]]), (200, 1, 1))
    recent = list(range(60))  # 1 request/s once the rate window has filled

    def need(device: int) -> int:
        scaler = ForecastScaler(max_replicas=16, cooldown_s=0.0, slo_s=12.0, horizon_s=20.0)
        serving = [ReplicaState(device) for _ in range(4)]
        scaler._first = 0.0  # watched long enough: the rate is 60 arrivals / 60 s
        return scaler.target(view(serving, now=60.0, recent=recent, book=book(table)))

    # 1 request/s of 2 s work: three fast replicas meet the SLO (one may go); on four
    # slow ones it is 8 s of work a second (twice their capacity): two fast ones are
    # added and take most arrivals (a device-blind look-ahead would see the fast case
    # and answer 3 for both)
    assert (need(0), need(1)) == (3, 6)


def test_make_scaler_passes_the_lookahead_options() -> None:
    scaler = make_scaler("forecast", horizon_s=60.0, quantile=0.8, window_s=30.0, target=0.5)
    assert isinstance(scaler, ForecastScaler)
    assert (scaler.horizon_s, scaler.quantile, scaler.window_s) == (60.0, 0.8, 30.0)
    hpa = make_scaler("utilization", target=0.5, horizon_s=60.0)
    assert isinstance(hpa, UtilizationScaler)
    assert hpa.target_utilization == 0.5


def test_hpa_rule_tolerance_queue_threshold_and_pending() -> None:
    scaler = UtilizationScaler(target=0.5)
    four = [ReplicaState(0) for _ in range(4)]
    assert scaler.target(view(four, utilization=0.52)) == 4  # inside the 10% tolerance
    assert scaler.target(view(four, utilization=0.8)) == 7  # ceil(4 x 0.8 / 0.5)
    assert scaler.target(view(four, utilization=0.2)) == 2
    assert scaler.target(view(four, pending=2, utilization=0.2)) == 6  # cold starts kept
    queued = [ReplicaState(0, running=[1], queue=deque([2, 3, 5])), ReplicaState(0, running=[4])]
    assert scaler.target(view(queued, utilization=0.5)) == 3  # 1.5 waiting per replica > 1
    with pytest.raises(ValueError, match="target utilisation"):
        UtilizationScaler(target=1.5)
