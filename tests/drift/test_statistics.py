"""The pure statistics against scipy's reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats  # type: ignore[import-untyped]

from drift import ad_uniform, coverage_test, ks_distance, ks_uniform, pinball_ratio
from drift._uniformity import _ad_inf_cdf


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ks_matches_scipy_without_tolerance(seed: int) -> None:
    u = np.random.default_rng(seed).uniform(size=200) ** 1.2
    d, p = ks_uniform(u)
    ref = stats.kstest(u, "uniform", method="exact")
    assert d == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue, rel=1e-6)


def test_ks_tolerance_only_counts_the_excess_distance() -> None:
    u = np.random.default_rng(4).uniform(size=300) ** 1.5
    d = ks_distance(u)
    assert ks_uniform(u, tolerance=d)[1] == 1.0
    p_strict, p_tol = ks_uniform(u)[1], ks_uniform(u, 0.05)[1]
    assert p_strict < p_tol < 1.0
    assert p_tol == pytest.approx(stats.kstwo.sf(d - 0.05, 300))


def test_ad_statistic_and_asymptotic_critical_values() -> None:
    u = np.random.default_rng(5).uniform(size=400)
    a2, _ = ad_uniform(u)
    x = np.sort(u)
    i = np.arange(1, 401)
    ref = -400 - np.mean((2 * i - 1) * (np.log(x) + np.log(1 - x[::-1])))
    assert a2 == pytest.approx(ref)
    # Tabulated asymptotic critical values of A2 (case 0: fully specified distribution).
    assert _ad_inf_cdf(2.492) == pytest.approx(0.95, abs=1e-3)
    assert _ad_inf_cdf(3.857) == pytest.approx(0.99, abs=1e-3)
    assert ad_uniform(np.full(50, 0.99))[1] < 1e-6


def test_coverage_matches_the_binomial_test_at_zero_tolerance() -> None:
    u = np.r_[np.full(160, 0.5), np.full(40, 0.95)]
    cov, p = coverage_test(u, 0.9, 0.0)
    assert cov == 0.8
    assert p == pytest.approx(min(1.0, 2 * stats.binom.cdf(160, 200, 0.9)))
    assert coverage_test(u, 0.9, 0.1) == (0.8, 1.0)
    high = np.full(100, 0.1)
    assert coverage_test(high, 0.9, 0.05)[1] == pytest.approx(2 * 0.95**100)
    cov_empty, p_empty = coverage_test([], 0.9, 0.05)
    assert np.isnan(cov_empty)
    assert p_empty == 1.0


def test_pinball_ratio() -> None:
    assert pinball_ratio([3.0, 3.0], [1.0, 2.0]) == 2.0
    assert pinball_ratio([1.0], [0.0]) == 1.0
