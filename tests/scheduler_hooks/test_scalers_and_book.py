"""Scalers on hand-built views; the forecast book's common random numbers."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from scheduler_hooks import ForecastBook, ReplicaState
from scheduler_hooks.scaling import (
    SCALERS,
    ForecastScaler,
    NoScaler,
    ScalingView,
    UtilizationScaler,
    make_scaler,
)

LEVELS = np.array([0.05, 0.5, 0.95])


def view(replicas: list[ReplicaState], now: float = 100.0, **kw: object) -> ScalingView:
    base: dict[str, object] = {"pending": 0, "arrival_rate": 0.0, "slots": 1, "device": 0}
    base.update(kw)
    return ScalingView(now, replicas, **base)  # type: ignore[arg-type]


def test_registry_and_unknown_names() -> None:
    assert list(SCALERS) == ["none", "utilization", "forecast"]
    with pytest.raises(ValueError, match="known scalers: none"):
        make_scaler("magic")
    assert isinstance(make_scaler("none", slo_s=3.0), NoScaler)


def test_utilization_thresholds_and_cooldown() -> None:
    scaler = UtilizationScaler(min_replicas=1, max_replicas=3, cooldown_s=30.0, stabilization_s=0)
    busy = [ReplicaState(0, running=[1]), ReplicaState(0, running=[2], queue=deque([3]))]
    assert scaler.desired(view(busy, now=0.0)) == 3
    assert scaler.desired(view(busy, now=10.0)) == 2  # cooldown holds the current count
    idle = [ReplicaState(0), ReplicaState(0), ReplicaState(0)]
    assert scaler.desired(view(idle, now=31.0)) == 2
    assert scaler.desired(view([ReplicaState(0)], now=100.0)) == 1  # min_replicas
    half = [ReplicaState(0, running=[1]), ReplicaState(0)]
    assert scaler.target(view(half)) == 2
    with pytest.raises(ValueError, match="min_replicas"):
        UtilizationScaler(min_replicas=4, max_replicas=2)


def test_scale_down_waits_for_the_stabilization_window() -> None:
    scaler = UtilizationScaler(max_replicas=8, cooldown_s=0.0, stabilization_s=100.0)
    busy = [ReplicaState(0, running=[1]), ReplicaState(0, running=[2])]
    idle = [ReplicaState(0) for _ in range(3)]
    assert scaler.desired(view(busy, now=0.0)) == 3
    assert scaler.desired(view(idle, now=50.0)) == 3  # wished 3 at t=0, inside the window
    assert scaler.desired(view(idle, now=101.0)) == 2  # the t=0 wish has left the window


def _book(table: np.ndarray) -> ForecastBook:
    return ForecastBook(LEVELS, lambda ids: table[ids], samples=4000, seed=0)


def test_forecast_scaler_sizes_for_arrivals_and_backlog() -> None:
    steady = np.tile(np.array([[[1.9, 2.0, 2.1]]]), (20, 1, 1))  # every request ~2 s
    scaler = ForecastScaler(max_replicas=64, cooldown_s=0.0, slo_s=10.0)
    reps = [ReplicaState(0)]
    # 2.9 requests/s x 2 s = 5.8 replicas busy: 6 would queue too long, 7 meet the SLO
    busy = view(reps, arrival_rate=2.9, recent=list(range(10)), book=_book(steady))
    assert scaler.target(busy) == 7
    # with a 6 s SLO, the same mean with a heavy-tailed forecast needs more headroom
    strict = ForecastScaler(max_replicas=64, cooldown_s=0.0, slo_s=6.0)
    assert strict.target(busy) == 7
    risky = np.tile(np.array([[[0.3, 1.0, 5.0]]]), (20, 1, 1))
    assert _book(risky).samples(0)[0].mean() == pytest.approx(2.0, rel=0.05)
    heavy = view(reps, arrival_rate=2.9, recent=list(range(10)), book=_book(risky))
    assert strict.target(heavy) == 8
    # backlog: 1 running + 18 queued x 2 s = 38 s must drain within the 10 s SLO: 4 replicas
    reps = [ReplicaState(0, running=[0], started=[100.0], queue=deque(range(1, 19)))]
    assert scaler.target(view(reps, arrival_rate=0.0, book=_book(steady))) == 4
    with pytest.raises(ValueError, match="needs forecasts"):
        scaler.target(view(reps))


def test_book_shares_percentiles_across_devices_and_is_seeded() -> None:
    table = np.array([[[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]], [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]])
    a, b = _book(table), _book(table)
    np.testing.assert_array_equal(a.samples(0), b.samples(0))
    np.testing.assert_allclose(a.samples(0)[1], 2 * a.samples(0)[0])
    assert not np.allclose(a.uniforms(0), a.uniforms(1))  # requests are independent
    assert a.samples(0)[0].mean() == pytest.approx(2.0, abs=0.05)


def test_book_remaining_is_conditional_on_elapsed() -> None:
    table = np.array([[[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]]])
    book = _book(table)
    fresh, late, past = book.remaining([0, 1, 1], [0, 0, 0], np.array([0.0, 2.5, 50.0]))
    assert fresh.mean() == pytest.approx(book.samples(0)[0].mean(), rel=1e-9)
    assert np.all(late >= 0)
    assert late.max() <= book.samples(1)[0].max() - 2.5 + 1e-9
    assert late.mean() < 1.0
    # past every draw: the memoryless exponential tail, scale (3 - 2) / ln(0.5 / 0.05)
    assert past.mean() == pytest.approx(1.0 / np.log(10.0), rel=0.1)
    book.forget(1)
    assert book.remaining([], [], np.zeros(0)).shape == (0, 4000)
