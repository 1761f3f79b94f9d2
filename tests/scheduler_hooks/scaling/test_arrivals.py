"""The look-ahead's arrivals: Poisson, Poisson bursts resampled from recent ones, or renewal."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

from scheduler_hooks import ForecastBook, ReplicaState
from scheduler_hooks.scaling import ForecastScaler, ScalingView
from scheduler_hooks.scaling._arrivals import (
    burst_sizes,
    bursts,
    draw_arrivals,
    draw_renewal,
    is_regular,
)


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


def test_burst_starts_are_the_first_arrival_of_each_burst() -> None:
    assert bursts([], 0.001)[0].tolist() == []
    assert bursts([1.0, 1.0, 2.0, 2.0005, 2.0011], 0.001)[0].tolist() == [1.0, 2.0]


def test_renewal_keeps_the_phase_of_periodic_bursts() -> None:
    rng = np.random.default_rng(7)
    sizes, gaps = np.array([3, 5], dtype=np.int64), np.array([30.0, 30.0, 30.0])
    arrivals, counts = draw_renewal(rng, 100.0, 500, sizes, gaps, age=12.0)
    firsts = [sorted(set(arrivals[p, : counts[p]].tolist())) for p in range(500)]
    assert all(f == [18.0, 48.0, 78.0] for f in firsts)  # 30 - 12, then every 30 s
    assert set(counts.tolist()) <= {9, 11, 13, 15}  # three bursts of 3 or 5
    assert np.isinf(arrivals[counts.argmin(), counts.min() :]).all()


def test_renewal_first_burst_is_a_residual_of_a_longer_gap_or_imminent() -> None:
    gaps, one = np.array([10.0, 50.0]), np.array([1], dtype=np.int64)
    arrivals, _ = draw_renewal(np.random.default_rng(0), 40.0, 400, one, gaps, age=20.0)
    assert set(arrivals[:, 0].tolist()) == {30.0}  # only the 50 s gap outlasts 20 s
    overdue, _ = draw_renewal(np.random.default_rng(0), 40.0, 400, one, gaps, age=80.0)
    assert set(overdue[:, 0].tolist()) == {0.0}


def _periodic_target(model: Literal["auto", "poisson", "renewal"], until: float) -> int:
    """The look-ahead's wish at ``until`` after bursts of 10 every 200 s (0, 200, ...)."""
    levels = np.array([0.05, 0.5, 0.95])
    table = np.tile(np.array([[[8.0, 10.0, 12.0]]]), (400, 1, 1))  # ~10 s each
    book = ForecastBook(levels, lambda ids: table[ids], samples=256, seed=0)
    scaler = ForecastScaler(
        max_replicas=16,
        cooldown_s=0.0,
        slo_s=25.0,
        quantile=0.8,
        horizon_s=60.0,
        arrival_model=model,
    )
    times = np.repeat(np.arange(0.0, until, 200.0), 10)
    idle = [ReplicaState(0) for _ in range(2)]
    want = 0
    for t in np.arange(10.0, until + 1.0, 10.0):
        ids = [i for i, at in enumerate(times) if t - 60.0 <= at < t]
        view = ScalingView(float(t), idle, 0, 0.05, 1, 0, book, ids, [float(times[i]) for i in ids])
        want = scaler.target(view)
    return want


def test_renewal_scales_for_the_next_burst_only_when_it_is_due() -> None:
    # 20 s after a burst the next one is 180 s away, beyond the 60 + 60 s look-ahead:
    # Poisson bursts may come at any time, the renewal model knows they do not
    assert _periodic_target("poisson", 620.0) > 3
    assert _periodic_target("renewal", 620.0) == 1
    # 100 s after it, the next burst lands after a cold start: both ask for replicas
    assert _periodic_target("renewal", 700.0) > 3


def test_forecast_scaler_rejects_an_unknown_arrival_model() -> None:
    with pytest.raises(ValueError, match="arrival_model"):
        ForecastScaler(arrival_model="hawkes")  # type: ignore[arg-type]


def test_regular_gaps_are_told_from_exponential_ones() -> None:
    rng = np.random.default_rng(1)
    assert is_regular(np.full(8, 58.4))
    assert not is_regular(np.full(7, 58.4))  # too few to say
    assert is_regular(58.4 + rng.normal(0.0, 5.0, 64))  # CV about 0.09
    assert not is_regular(rng.exponential(3.0, 64))
    assert not is_regular(np.zeros(10))


def test_auto_uses_renewal_once_the_bursts_prove_regular() -> None:
    # 20 s after the 11th burst of a 200 s period: auto has seen 10 regular gaps
    assert _periodic_target("auto", 2020.0) == 1
    assert _periodic_target("poisson", 2020.0) > 3
    # after 3 bursts auto still has too few gaps and draws Poisson bursts
    assert _periodic_target("auto", 420.0) == _periodic_target("poisson", 420.0) > 3
