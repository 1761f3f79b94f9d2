from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import QuantileForecast
from training.metrics import (
    calibration_error,
    coverage,
    crps,
    interpolate_quantiles,
    level_key,
    mean_pinball,
    pinball,
    pit,
    score,
)

F64 = np.ndarray[tuple[int, ...], np.dtype[np.float64]]
LEVELS = (0.1, 0.5, 0.9)


# --- exact numbers ----------------------------------------------------------------------
def test_pinball_by_hand() -> None:
    y = np.array([1.5, 5.0, 2.0])
    q = np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0], [2.0, 2.0, 2.0]])
    # level 0.1: (0.1*0.5 + 0.1*4 + 0) / 3; 0.5: (0.5*0.5 + 0.5*3 + 0) / 3;
    # 0.9: (0.1*2.5 + 0.9*1 + 0) / 3
    np.testing.assert_allclose(pinball(y, q, LEVELS), [0.15, 1.75 / 3, 1.15 / 3], rtol=1e-12)
    assert mean_pinball(y, q, LEVELS) == pytest.approx((0.45 + 1.75 + 1.15) / 9, rel=1e-12)
    np.testing.assert_array_equal(coverage(y, q), [1 / 3, 2 / 3, 2 / 3])
    expected_cal = (abs(1 / 3 - 0.1) + abs(2 / 3 - 0.5) + abs(2 / 3 - 0.9)) / 3
    assert calibration_error(y, q, LEVELS) == pytest.approx(expected_cal, rel=1e-12)


def test_pinball_matches_loop_on_seeded_data() -> None:
    rng = np.random.default_rng(7)
    levels = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    y = rng.lognormal(1.0, 0.5, 500)
    q = np.sort(rng.lognormal(1.0, 0.5, (500, 5)), axis=1)
    expected = [
        np.mean(
            [max(t * (yi - qi), (t - 1) * (yi - qi)) for yi, qi in zip(y, q[:, k], strict=True)]
        )
        for k, t in enumerate(levels)
    ]
    np.testing.assert_allclose(pinball(y, q, levels), expected, rtol=1e-12)
    np.testing.assert_array_equal(coverage(y, q), (y[:, None] <= q).mean(axis=0))


def test_true_quantiles_are_calibrated_and_beat_shifted_ones() -> None:
    rng = np.random.default_rng(0)
    levels = np.array([0.1, 0.5, 0.9])
    y = rng.exponential(2.0, 20_000)
    true_q = np.tile(-2.0 * np.log1p(-levels), (y.size, 1))  # exponential quantiles
    np.testing.assert_allclose(coverage(y, true_q), levels, atol=0.01)
    assert calibration_error(y, true_q, levels) < 0.01
    assert mean_pinball(y, true_q, levels) < mean_pinball(y, true_q * 1.3, levels)
    assert mean_pinball(y, true_q, levels) < mean_pinball(y, true_q * 0.7, levels)


def test_pit_and_interpolation_by_hand() -> None:
    q = np.array([[1.0, 2.0, 4.0], [0.0, 0.0, 2.0]])
    # Row 0: linear 0.1->1, 0.5->2, 0.9->4; right tail scale 2 / ln 5.
    # Row 1: flat from 0.1 to 0.5 (right-continuous cdf: 0.5 at 0); left tail scale 0.
    u = pit([3.0, 0.0], q, LEVELS)
    np.testing.assert_allclose(u, [0.7, 0.5], rtol=1e-12)
    out = interpolate_quantiles(q, LEVELS, [0.3, 0.7, 0.95, 0.05])
    right0 = 4.0 + 2.0 / np.log(5.0) * np.log(0.1 / 0.05)
    left0 = 1.0 - 1.0 / np.log(5.0) * np.log(2.0)
    np.testing.assert_allclose(out[0], [1.5, 3.0, right0, left0], rtol=1e-12)
    np.testing.assert_allclose(out[1], [0.0, 1.0, 2.0 + 2.0 / np.log(5.0) * np.log(2.0), 0.0])
    # At the given levels the quantiles come back exactly.
    np.testing.assert_array_equal(interpolate_quantiles(q, LEVELS, LEVELS), q)


def test_lower_bound_clips_quantiles_and_zeroes_cdf() -> None:
    q = np.array([[0.5, 2.0, 4.0]])
    low = interpolate_quantiles(q, LEVELS, [0.01], lower=0.0)
    assert low[0, 0] == 0.0
    assert interpolate_quantiles(q, LEVELS, [0.01])[0, 0] < 0.0
    assert pit([-1.0], q, LEVELS, lower=0.0)[0] == 0.0
    assert pit([-1.0], q, LEVELS)[0] > 0.0


def test_crps_of_a_point_forecast_is_absolute_error() -> None:
    q = np.full((3, 3), 2.0)
    y = np.array([2.0, 5.0, 0.5])
    # F is a step at 2: CRPS = |y - 2|; the midpoint rule is exact here (mean tau = 1/2).
    assert crps(y, q, LEVELS) == pytest.approx((0 + 3 + 1.5) / 3, rel=1e-12)


def test_crps_matches_the_integral_of_the_squared_cdf_gap() -> None:
    rng = np.random.default_rng(3)
    levels = np.array([0.05, 0.2, 0.5, 0.8, 0.95])
    for _ in range(5):
        values = np.cumsum(rng.uniform(0.1, 2.0, levels.size))
        f = QuantileForecast(levels=tuple(levels), values=tuple(values), lower=0.0)
        y = float(rng.uniform(0.0, values[-1] * 1.5))
        xs = np.linspace(0.0, values[-1] + 40.0 * (values[-1] - values[-2]), 400_001)
        gap = (f.cdf(xs) - (xs >= y)) ** 2
        exact = float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(xs)))
        approx = crps([y], values[None, :], levels, lower=0.0)
        assert approx == pytest.approx(exact, rel=0.01)


def test_crps_is_blockwise_consistent() -> None:
    rng = np.random.default_rng(11)
    q = np.sort(rng.lognormal(0.0, 1.0, (5000, 3)), axis=1)
    y = rng.lognormal(0.0, 1.0, 5000)
    whole = crps(y, q, LEVELS)
    halves = (crps(y[:2500], q[:2500], LEVELS) + crps(y[2500:], q[2500:], LEVELS)) / 2
    assert whole == pytest.approx(halves, rel=1e-12)
    assert crps(np.zeros(0), np.zeros((0, 3)), LEVELS) == 0.0


def test_score_collects_everything_as_plain_floats() -> None:
    y = np.array([1.5, 5.0])
    q = np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])
    s = score(y, q, LEVELS)
    assert s["pinball"] == {"0.1": pytest.approx(0.225), "0.5": 0.875, "0.9": 0.575}
    assert s["coverage"] == {"0.1": 0.0, "0.5": 0.5, "0.9": 0.5}
    assert s["mean_pinball"] == pytest.approx(0.5583333333333333)
    assert s["calibration_error"] == pytest.approx(1 / 6)
    assert s["crps"] == pytest.approx(crps(y, q, LEVELS))
    values = [*s["pinball"].values(), *s["coverage"].values()]
    values += [s["mean_pinball"], s["crps"], s["calibration_error"]]
    assert all(type(v) is float for v in values)


def test_level_key() -> None:
    assert [level_key(v) for v in (0.1, 0.5, 0.95, 0.99, 0.001)] == [
        "0.1",
        "0.5",
        "0.95",
        "0.99",
        "0.001",
    ]
    assert level_key(np.float64(0.9)) == "0.9"


@pytest.mark.parametrize(
    ("y", "q", "levels", "message"),
    [
        ([1.0], [[1.0, 2.0]], (0.5, 0.4), "increasing"),
        ([1.0], [[1.0, 2.0]], (0.0, 0.5), "inside"),
        ([1.0], [[1.0, 2.0, 3.0]], (0.1, 0.5), "columns"),
        ([1.0, 2.0], [[1.0, 2.0]], (0.1, 0.5), "shape"),
        ([np.nan], [[1.0, 2.0]], (0.1, 0.5), "finite"),
        ([1.0], [[2.0, 1.0]], (0.1, 0.5), "cross"),
        ([1.0], [1.0, 2.0], (0.1, 0.5), "shape"),
    ],
)
def test_invalid_inputs_raise(
    y: list[float], q: object, levels: tuple[float, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        score(y, q, levels)  # type: ignore[arg-type]


def test_interpolation_rejects_bad_new_levels() -> None:
    with pytest.raises(ValueError, match="new_levels"):
        interpolate_quantiles([[1.0, 2.0]], (0.1, 0.5), [1.0])
    with pytest.raises(ValueError, match="at least 2"):
        pit([1.0], [[1.0]], (0.5,))


def test_pit_of_draws_from_the_forecast_is_uniform() -> None:
    rng = np.random.default_rng(5)
    levels = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    base = np.cumsum(rng.uniform(0.1, 1.0, (2000, levels.size)), axis=1)
    y = np.array(
        [
            QuantileForecast(levels=tuple(levels), values=tuple(row)).sample(1, rng)[0]
            for row in base
        ]
    )
    u = pit(y, base, levels)
    counts, _ = np.histogram(u, bins=10, range=(0, 1))
    assert counts.min() > 150
    assert counts.max() < 250


# --- agreement with core.QuantileForecast (property tests) -------------------------------
@st.composite
def forecast_grids(draw: st.DrawFn) -> tuple[F64, F64, float | None]:
    """Levels (K,), quantile rows (n, K) with occasional ties, optional lower bound."""
    k = draw(st.integers(2, 8))
    levels = sorted(set(draw(st.lists(st.floats(0.001, 0.999), min_size=k, max_size=k))))
    if len(levels) < 2 or min(np.diff(levels)) < 1e-4:
        levels = list(np.linspace(0.05, 0.95, k))
    n = draw(st.integers(1, 6))
    lower = draw(st.sampled_from([None, 0.0]))
    rows = []
    for _ in range(n):
        start = draw(st.floats(0.0 if lower is not None else -50.0, 50.0))
        steps = draw(
            st.lists(
                st.one_of(st.just(0.0), st.floats(0.0, 20.0)),
                min_size=len(levels) - 1,
                max_size=len(levels) - 1,
            )
        )
        rows.append([start, *(start + np.cumsum(steps)).tolist()])
    return np.asarray(levels), np.asarray(rows), lower


@settings(max_examples=200, deadline=None)
@given(forecast_grids(), st.lists(st.floats(-200.0, 200.0), min_size=1, max_size=6))
def test_pit_agrees_with_forecast_cdf(grid: tuple[F64, F64, float | None], xs: list[float]) -> None:
    levels, q, lower = grid
    rows = [QuantileForecast(levels=tuple(levels), values=tuple(r), lower=lower) for r in q]
    for x in xs:
        y = np.full(len(q), x)
        # Also score each row at one of its own quantiles (the kinks of the cdf).
        for yy in (y, q[:, len(levels) // 2]):
            expected = np.array([f.cdf(float(v)) for f, v in zip(rows, yy, strict=True)])
            np.testing.assert_allclose(pit(yy, q, levels, lower=lower), expected, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(forecast_grids(), st.lists(st.floats(1e-6, 1 - 1e-6), min_size=1, max_size=10))
def test_interpolation_agrees_with_forecast_ppf(
    grid: tuple[F64, F64, float | None], new_levels: list[float]
) -> None:
    levels, q, lower = grid
    out = interpolate_quantiles(q, levels, new_levels, lower=lower)
    assert out.shape == (len(q), len(new_levels))
    for row, values in zip(out, q, strict=True):
        f = QuantileForecast(levels=tuple(levels), values=tuple(values), lower=lower)
        np.testing.assert_allclose(row, f.ppf(np.asarray(new_levels)), rtol=1e-12, atol=1e-9)


def test_agreement_on_random_cases() -> None:
    rng = np.random.default_rng(2024)
    levels = np.array([0.01, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99])
    q = np.cumsum(rng.exponential(1.0, (300, levels.size)), axis=1)
    q[::7, 3:5] = q[::7, 3:4]  # ties
    y = rng.uniform(-5.0, q.max() * 1.2, 300)
    taus = rng.uniform(1e-4, 1 - 1e-4, 25)
    u, inter = pit(y, q, levels), interpolate_quantiles(q, levels, taus)
    for i in range(300):
        f = QuantileForecast(levels=tuple(levels), values=tuple(q[i]))
        assert u[i] == pytest.approx(f.cdf(float(y[i])), abs=1e-12)
        np.testing.assert_allclose(inter[i], f.ppf(taus), rtol=1e-12, atol=1e-12)
