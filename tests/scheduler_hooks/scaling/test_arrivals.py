"""The look-ahead's arrivals: Poisson, or Poisson bursts resampled from recent ones."""

from __future__ import annotations

import numpy as np
import pytest

from scheduler_hooks import ForecastBook, ReplicaState
from scheduler_hooks.scaling import ForecastScaler, ScalingView
from scheduler_hooks.scaling._arrivals import burst_sizes, draw_arrivals


def test_burst_sizes_group_close_arrivals() -> None:
    assert burst_sizes([], 0.001).tolist() == []
    assert burst_sizes([1.0, 1.0, 2.0, 2.0005, 2.0011], 0.001).tolist() == [2, 3]
    assert burst_sizes([1.0, 1.0, 2.0, 2.0005, 2.0011], 0.0).tolist() == [2, 1, 1, 1]


def test_single_request_bursts_draw_exactly_the_poisson_arrivals() -> None:
    a, n = draw_arrivals(np.random.default_rng(3), 0.5, 120.0, 64, np.ones(5, dtype=np.int64))
    b, m = draw_arrivals(np.random.default_rng(3), 0.5, 120.0, 64, None)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(n, m)
    rng = np.random.default_rng(3)
    counts = rng.poisson(60.0, size=64)
    assert n.tolist() == counts.tolist()  # the plain draw, call for call


def test_bursts_keep_the_rate_and_arrive_together() -> None:
    sizes = np.array([10, 10, 1, 1], dtype=np.int64)  # mean 5.5
    arrivals, counts = draw_arrivals(np.random.default_rng(0), 0.5, 600.0, 2000, sizes)
    assert counts.mean() == pytest.approx(300.0, rel=0.05)  # 0.5 requests/s x 600 s
    assert counts.shape == (2000,)
    assert arrivals.shape[0] == 2000
    first = arrivals[0, : counts[0]]
    assert np.all(np.diff(first) >= 0)
    assert np.all(np.isinf(arrivals[0, counts[0] :]))
    # about 10/11 of the requests share their instant with at least one other
    shared = np.mean([np.sum(first == t) > 1 for t in first])
    assert 0.8 < shared < 0.97


def test_forecast_scaler_holds_more_replicas_for_bursty_arrivals() -> None:
    levels = np.array([0.05, 0.5, 0.95])
    table = np.tile(np.array([[[8.0, 10.0, 12.0]]]), (400, 1, 1))  # ~10 s each
    idle = [ReplicaState(0) for _ in range(2)]

    def run(burst: int) -> int:
        book = ForecastBook(levels, lambda ids: table[ids], samples=256, seed=0)
        scaler = ForecastScaler(
            max_replicas=16, cooldown_s=0.0, slo_s=25.0, quantile=0.8, horizon_s=60.0
        )
        times = np.repeat(np.arange(0.0, 400.0, 20.0 * burst), burst)  # 0.05 requests/s
        want = 0
        for t in range(10, 400, 10):
            ids = [i for i, at in enumerate(times) if t - 60.0 <= at < t]
            v = ScalingView(
                float(t), idle, 0, 0.05, 1, 0, book, ids, [float(times[i]) for i in ids]
            )
            want = scaler.target(v)
        return want

    spread, bursts = run(1), run(10)
    assert spread == 1  # one ~10 s request every 20 s: one replica keeps up
    assert bursts > 3  # ten at once: they must not wait 10 rounds
