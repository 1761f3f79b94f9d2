"""Seeded checks of the pure composition functions (exact numbers)."""

from __future__ import annotations

import numpy as np
import pytest

from core.workflow import (
    comonotone_sum,
    conditional_cdf,
    count_mean,
    count_quantiles,
    draw,
    latency_scores,
    pace,
    sample,
    shift_quantiles,
    sum_of_means,
    sum_of_p90,
)

Z = np.linspace(-4.0, 4.0, 81)


def _tables(calls: int = 8) -> tuple[np.ndarray, np.ndarray]:
    latency = np.tile(2.0 * np.exp(0.5 * Z), (calls, 1))  # log-normal seconds, median 2
    tools = np.linspace(0.1, 0.5, 10)
    return latency, tools


def test_draws_are_seeded_and_shaped() -> None:
    a, b = draw(5, 3, seed=7), draw(5, 3, seed=7)
    assert a.samples == 5
    assert a.max_calls == 3
    np.testing.assert_array_equal(a.calls, b.calls)
    assert round(float(a.calls.sum()), 6) == round(float(b.calls.sum()), 6)
    assert not np.array_equal(a.calls, draw(5, 3, seed=8).calls)
    with pytest.raises(ValueError, match=">= 1"):
        draw(0, 3)


def test_sample_exact_numbers() -> None:
    latency, tools = _tables()
    cdf = np.array([0.0, 0.2, 0.5, 0.9, 1.0])
    n, remaining = sample(latency, Z, tools, cdf, draw(2000, 8, seed=1), steps_done=0, rho=0.4)
    assert np.bincount(n).tolist() == [0, 0, 382, 620, 792, 206]
    assert round(float(remaining.mean()), 4) == 6.1349
    assert round(float(np.quantile(remaining, 0.9)), 4) == 10.3092


def test_conditioning_on_steps_done_raises_the_count() -> None:
    latency, tools = _tables()
    cdf = np.array([0.0, 0.2, 0.5, 0.9, 1.0])
    d = draw(2000, 8, seed=1)
    n, remaining = sample(latency, Z, tools, cdf, d, steps_done=3, rho=0.4)
    assert n.min() == 4
    assert np.bincount(n).tolist() == [0, 0, 0, 0, 1594, 406]
    assert round(float(remaining.mean()), 4) == 3.0631
    # common random numbers: the same draws answer the same question the same way
    again = sample(latency, Z, tools, cdf, d, steps_done=3, rho=0.4)[1]
    np.testing.assert_array_equal(remaining, again)


def test_correlation_widens_the_sum_but_keeps_the_mean() -> None:
    latency, tools = _tables(40)
    cdf = np.zeros(30)
    cdf[-1] = 1.0  # exactly 30 calls
    d = draw(4000, 40, seed=3)
    _, independent = sample(latency, Z, tools, cdf, d, rho=0.0)
    _, correlated = sample(latency, Z, tools, cdf, d, rho=0.8)
    assert abs(independent.mean() - correlated.mean()) < 0.05 * independent.mean()
    assert correlated.std() > 2.5 * independent.std()


def test_pending_tool_replaces_the_first_tool_time() -> None:
    latency, tools = _tables()
    cdf = np.array([0.0, 0.0, 0.0, 1.0])
    d = draw(500, 8, seed=2)
    _, plain = sample(latency, Z, tools, cdf, d, steps_done=3)
    _, slow = sample(latency, Z, tools, cdf, d, steps_done=3, pending_tool=np.full(4, 30.0))
    np.testing.assert_allclose(slow - plain, 30.0 - tools[(d.tools[:, 3] * 10).astype(int)])


def test_sample_rejects_short_draws() -> None:
    latency, tools = _tables()
    with pytest.raises(ValueError, match="draws cover 2 calls"):
        sample(latency, Z, tools, np.array([0.0, 0.5, 1.0]), draw(10, 2))


def test_count_functions_exact() -> None:
    cdf = np.array([0.1, 0.3, 0.6, 1.0])
    assert count_mean(cdf) == pytest.approx(3.0)
    assert count_quantiles(cdf, np.array([0.05, 0.3, 0.31, 0.99])).tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(conditional_cdf(cdf, 2), [0.0, 0.0, 3 / 7, 1.0])
    assert conditional_cdf(cdf, 0) is cdf
    # beyond the support: one more call, for sure
    assert conditional_cdf(cdf, 5).tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_point_compositions_exact() -> None:
    means = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    cdf = np.array([0.0, 0.0, 0.5, 1.0])  # N = 3 or 4: mean 3.5, 2.5 rounds from call 1
    assert sum_of_means(means, 0.5, cdf) == pytest.approx((1.5 + 2.5) + 0.5 * 3.5)
    assert sum_of_p90(means, 0.0, cdf, steps_done=3) == pytest.approx(3.0)
    assert sum_of_means(means, 0.0, cdf, steps_done=4) == pytest.approx(4.0)


def test_exact_quantile_arithmetic() -> None:
    q = np.array([[1.0, 2.0, 4.0], [0.5, 1.0, 3.0]])
    assert comonotone_sum(q).tolist() == [1.5, 3.0, 7.0]
    assert shift_quantiles(q[0], 2.5).tolist() == [3.5, 4.5, 6.5]
    # comonotone: the same uniform through every quantile function sums to the row sums
    u = np.array([0.1, 0.5, 0.9])
    lv = np.array([0.1, 0.5, 0.9])
    draws = np.array([np.interp(u, lv, row) for row in q]).sum(axis=0)
    np.testing.assert_allclose(draws, comonotone_sum(q))


def test_sample_sums_exactly_the_live_rounds() -> None:
    """The blocked sum equals a plain per-sample loop over the same draws."""
    latency, tools = _tables(12)
    cdf = np.array([0.0, 0.1, 0.2, 0.4, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0])
    d = draw(300, 12, seed=4)
    n, remaining = sample(latency, Z, tools, cdf, d, steps_done=2, rho=0.3)
    z = np.sqrt(0.3) * d.shared[:, None] + np.sqrt(0.7) * d.calls
    gi = np.clip(np.rint((z + 4.0) / 0.1), 0, 80).astype(int)
    ti = np.minimum((d.tools * 10).astype(int), 9)
    expected = [
        sum(latency[s, gi[j, s]] + tools[ti[j, s]] for s in range(2, int(n[j]))) for j in range(300)
    ]
    np.testing.assert_allclose(remaining, expected, rtol=1e-12)
    assert np.all(np.diff(d.count) >= 0)  # draw sorts the count uniforms


def test_pace_posterior_exact() -> None:
    assert pace(np.array([1.0, 1.0, 1.0]), 0.25) == pytest.approx((1.0, np.sqrt(0.5)))
    assert pace(np.array([np.nan, 2.0]), 0.5) == pytest.approx((np.sqrt(2.0), np.sqrt(0.5)))
    assert pace(np.zeros(0), 0.5) == (0.0, 1.0)
    assert pace(np.array([3.0]), 0.0) == (0.0, 1.0)


def test_a_known_pace_moves_the_remaining_time() -> None:
    latency, tools = _tables()
    cdf = np.array([0.0, 0.0, 0.0, 0.5, 1.0])
    d = draw(2000, 8, seed=5)
    prior = sample(latency, Z, tools, cdf, d, steps_done=2, rho=0.5)[1]
    same = sample(latency, Z, tools, cdf, d, steps_done=2, rho=0.5, shared=(0.0, 1.0 - 1e-12))
    np.testing.assert_allclose(same[1], prior)  # the prior as a "known pace": same answer
    slow = sample(latency, Z, tools, cdf, d, steps_done=2, rho=0.5, shared=(1.5, 0.2))[1]
    assert round(float(prior.mean()), 4) == 6.53
    assert round(float(slow.mean()), 4) == 9.89
    assert slow.std() < 1.5 * prior.std()


def test_latency_scores_invert_the_tables() -> None:
    latency, _ = _tables()
    y = 2.0 * np.exp(0.5 * np.array([0.0, 1.0, -2.0, 10.0]))
    np.testing.assert_allclose(latency_scores(latency, Z, y), [0.0, 1.0, -2.0, 4.0], atol=1e-9)
    assert np.isnan(latency_scores(latency, Z, np.array([np.nan]))[0])
