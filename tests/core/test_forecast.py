from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core import QuantileForecast


@st.composite
def forecasts(draw: st.DrawFn, lower: bool = False) -> QuantileForecast:
    k = draw(st.integers(min_value=2, max_value=12))
    levels = sorted(
        set(draw(st.lists(st.floats(0.001, 0.999), min_size=k, max_size=k, unique=True)))
    )
    if len(levels) < 2 or min(np.diff(levels)) < 1e-4:
        levels = list(np.linspace(0.05, 0.95, k))
    start = draw(st.floats(0.0 if lower else -100.0, 100.0))
    steps = draw(st.lists(st.floats(0.0, 50.0), min_size=len(levels) - 1, max_size=len(levels) - 1))
    values = [start, *(start + np.cumsum(steps)).tolist()]
    return QuantileForecast(
        levels=tuple(levels), values=tuple(values), lower=0.0 if lower else None
    )


levels_in_unit = st.floats(1e-6, 1 - 1e-6)


@given(forecasts(), st.lists(levels_in_unit, min_size=2, max_size=50))
def test_ppf_is_monotone(f: QuantileForecast, qs: list[float]) -> None:
    q = np.sort(np.asarray(qs))
    assert np.all(np.diff(f.ppf(q)) >= -1e-9)


@given(forecasts(), st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=50))
def test_cdf_is_monotone_and_bounded(f: QuantileForecast, xs: list[float]) -> None:
    x = np.sort(np.asarray(xs))
    p = f.cdf(x)
    assert np.all(np.diff(p) >= -1e-12)
    assert np.all((p >= 0) & (p <= 1))


@given(forecasts(), levels_in_unit)
def test_cdf_inverts_ppf_where_strictly_increasing(f: QuantileForecast, q: float) -> None:
    x = f.ppf(q)
    eps = 1e-7
    above, below = f.ppf(min(q + eps, 1 - 1e-9)), f.ppf(max(q - eps, 1e-9))
    if above - x > 1e-9 and x - below > 1e-9:  # strictly increasing on both sides of q
        assert f.cdf(x) == pytest.approx(q, abs=1e-6)
    else:  # flat stretch: the cdf reaches q at x, up to x's rounding (a segment of
        # width 1e-12 s resolves levels only to about ulp(x) / 1e-12)
        assert f.cdf(x + 1e-9 * max(1.0, abs(x))) >= q - 1e-6


@given(forecasts(), st.floats(-1e3, 1e3))
def test_ppf_inverts_cdf(f: QuantileForecast, x: float) -> None:
    p = f.cdf(x)
    if 1e-9 < p < 1 - 1e-9:
        assert f.ppf(p) <= x + 1e-6 * max(1.0, abs(x))


@given(forecasts())
def test_passes_through_given_quantiles(f: QuantileForecast) -> None:
    np.testing.assert_allclose(f.ppf(np.asarray(f.levels)), f.values, rtol=1e-9, atol=1e-9)


@settings(max_examples=40)
@given(forecasts(lower=True))
@example(QuantileForecast(levels=(0.0625, 0.5), values=(12.0, 12.03125), lower=0.0))
def test_mean_matches_monte_carlo_and_respects_lower(f: QuantileForecast) -> None:
    draws = f.sample(200_000, np.random.default_rng(0))
    assert draws.min() >= 0.0
    standard_error = float(draws.std()) / np.sqrt(draws.size)
    assert f.mean() == pytest.approx(float(draws.mean()), abs=5 * standard_error + 1e-9)


def test_exact_numbers() -> None:
    f = QuantileForecast(levels=(0.1, 0.5, 0.9), values=(1.0, 2.0, 4.0))
    assert f.ppf(0.3) == pytest.approx(1.5)
    assert f.cdf(1.5) == pytest.approx(0.3)
    # exponential right tail continuing the last segment: scale 2 / ln 5
    assert f.ppf(0.99) == pytest.approx(4.0 + 2.0 / math.log(5) * math.log(10))
    assert f.cdf(100.0) == pytest.approx(1.0)
    assert f.mean() == pytest.approx(
        1.8 + 0.1 * (4 + 2 / math.log(5)) + 0.1 * (1 - 1 / math.log(5))
    )
    assert f.quantiles([0.5, 0.9]) == {0.5: 2.0, 0.9: 4.0}


def test_sample_is_reproducible() -> None:
    f = QuantileForecast(levels=(0.1, 0.5, 0.9), values=(1.0, 2.0, 4.0), lower=0.0)
    a = f.sample(5, np.random.default_rng(42))
    b = f.sample(5, np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)


def test_point_mass_on_flat_stretch() -> None:
    f = QuantileForecast(levels=(0.1, 0.5, 0.9), values=(2.0, 2.0, 2.0))
    assert f.cdf(2.0) == 1.0
    assert f.cdf(1.999) == 0.0
    assert f.ppf(0.7) == 2.0
    assert f.mean() == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("levels", "values", "message"),
    [
        ((0.5, 0.1), (1.0, 2.0), "strictly increasing"),
        ((0.1, 0.5), (2.0, 1.0), "non-decreasing"),
        ((0.0, 0.5), (1.0, 2.0), "inside"),
        ((0.1, 0.5, 0.9), (1.0, 2.0), "levels but"),
        ((0.1, 0.5), (1.0, float("nan")), "finite"),
    ],
)
def test_rejects_invalid(
    levels: tuple[float, ...], values: tuple[float, ...], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        QuantileForecast(levels=levels, values=values)


def test_ppf_rejects_levels_outside_unit_interval() -> None:
    f = QuantileForecast(levels=(0.1, 0.9), values=(1.0, 2.0))
    with pytest.raises(ValueError, match="inside"):
        f.ppf(1.0)
