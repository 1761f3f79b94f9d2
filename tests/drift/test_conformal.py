"""Adaptive conformal calibration: coverage comes back after a shift, holds when calibrated.

Streams are lognormal latencies with forecasts that are the exact quantiles of the
distribution before any shift; properties are checked with tolerances over windows of
500 observations (the standard error of a 0.9 coverage over 500 is 1.3 points).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from scipy.stats import norm  # type: ignore[import-untyped]

from core.drift import DriftGroup
from drift import CONFORMAL_FORMAT, AdaptiveCalibrator, ConformalConfig, apply_offsets

LEVELS = (0.1, 0.5, 0.9, 0.95, 0.99)
SIGMA = 0.6  # log-latency spread of the stream
G = DriftGroup(served_model="deepseek-chat", prompt_class="c0", device="deepseek-api")
H = DriftGroup(served_model="deepseek-chat", prompt_class="c1", device="deepseek-api")
FORECAST = np.exp(SIGMA * norm.ppf(LEVELS))  # seconds: exact quantiles of scale 1


def _stream(
    cal: AdaptiveCalibrator, groups: list[DriftGroup], scales: list[float], n: int, seed: int
) -> dict[str, np.ndarray]:
    """Feed ``n`` outcomes to ``cal``, group ``i % len(groups)`` at its scale; hits by group."""
    rng = np.random.default_rng(seed)
    hits: dict[str, list[np.ndarray]] = {g.key(): [] for g in groups}
    for i in range(n):
        k = i % len(groups)
        y = scales[k] * float(np.exp(SIGMA * rng.standard_normal()))
        issued = cal.adjust(groups[k], LEVELS, FORECAST)
        hits[groups[k].key()].append(y <= issued)
        cal.update(groups[k], LEVELS, issued, y)
    return {k: np.asarray(v) for k, v in hits.items()}


def _windows(hits: np.ndarray, size: int = 500, skip: int = 500) -> np.ndarray:
    """Coverage per level (columns) of each window of ``size`` after ``skip`` (rows)."""
    starts = range(skip, len(hits) - size + 1, size)
    return np.array([hits[s : s + size].mean(axis=0) for s in starts])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coverage_comes_back_after_a_1_5x_slowdown(seed: int) -> None:
    cal = AdaptiveCalibrator()
    hits = _stream(cal, [G], [1.5], 3500, seed)[G.key()]
    windows = _windows(hits)
    assert windows.shape[0] == 6
    # Uncorrected, the 0.9 quantile of scale 1 covers only P(z <= 1.28 - ln 1.5 / 0.6) ~ 0.75.
    assert np.all(np.abs(windows - np.asarray(LEVELS)) <= 0.04), windows.round(3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_calibrated_stream_stays_calibrated(seed: int) -> None:
    cal = AdaptiveCalibrator()
    hits = _stream(cal, [G], [1.0], 3000, seed)[G.key()]
    windows = _windows(hits, skip=0)
    assert np.all(np.abs(windows - np.asarray(LEVELS)) <= 0.04), windows.round(3)
    assert np.all(np.abs(hits.mean(axis=0) - np.asarray(LEVELS)) <= 0.015)


def test_groups_shifted_apart_each_come_back() -> None:
    """One group slower, one faster: the shared term cannot fit both, the group terms do."""
    cal = AdaptiveCalibrator()
    hits = _stream(cal, [G, H], [1.5, 0.7], 7000, seed=3)
    for key in (G.key(), H.key()):
        windows = _windows(hits[key])
        assert np.all(np.abs(windows[:, 2] - 0.9) <= 0.04), (key, windows[:, 2].round(3))
    slow, fast = (cal.offsets(g, LEVELS)[2] for g in (G, H))
    assert slow > np.log(1.2)
    assert fast < np.log(0.85)


def test_own_outcome_never_adjusts_own_forecast_and_warm_up_holds_the_group_term() -> None:
    cal = AdaptiveCalibrator(ConformalConfig(gamma=0.1, warm_up=3, shared=False))
    issued = cal.adjust(G, LEVELS, FORECAST)
    assert np.array_equal(issued, FORECAST)  # nothing learned yet
    for _ in range(2):
        cal.update(G, LEVELS, issued, 100.0)
    assert np.array_equal(cal.adjust(G, LEVELS, FORECAST), FORECAST)  # warming up
    cal.update(G, LEVELS, issued, 100.0)
    assert np.all(cal.adjust(G, LEVELS, FORECAST) > FORECAST)


@hsettings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(0.0, 1e4), min_size=5, max_size=5).map(sorted),
    outcomes=st.lists(st.floats(0.0, 1e4), min_size=1, max_size=40),
    gamma=st.floats(0.001, 1.0),
)
def test_adjusted_quantiles_are_non_decreasing(
    values: list[float], outcomes: list[float], gamma: float
) -> None:
    cal = AdaptiveCalibrator(ConformalConfig(gamma=gamma, warm_up=0))
    for y in outcomes:
        issued = cal.adjust(G, LEVELS, values)
        assert np.all(np.diff(issued) >= 0.0)
        assert np.all(issued >= 0.0)
        cal.update(G, LEVELS, issued, y)
    rows = np.tile(values, (3, 1))
    assert np.all(np.diff(apply_offsets(rows, cal.offsets(G, LEVELS)), axis=1) >= 0.0)
    assert np.all(np.abs(cal.offsets(G, LEVELS)) <= 2 * cal.config.bound)


def test_state_round_trips_through_json_and_continues_identically() -> None:
    cal = AdaptiveCalibrator()
    _stream(cal, [G, H], [1.3, 0.8], 400, seed=4)
    doc = json.loads(json.dumps(cal.to_dict()))
    assert doc["format"] == CONFORMAL_FORMAT
    again = AdaptiveCalibrator.from_dict(doc, cal.config)
    for g in (G, H):
        assert np.array_equal(again.offsets(g, LEVELS), cal.offsets(g, LEVELS))
    a = _stream(cal, [G, H], [1.3, 0.8], 300, seed=5)
    b = _stream(again, [G, H], [1.3, 0.8], 300, seed=5)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert again.to_dict() == cal.to_dict()


def test_reset_forgets_one_served_model_and_other_grids_start_afresh() -> None:
    other = DriftGroup(served_model="llama", prompt_class="c0", device="h100")
    cal = AdaptiveCalibrator(ConformalConfig(warm_up=0))
    for g in (G, other):
        cal.update(g, LEVELS, FORECAST, 100.0)
    assert cal.served_models() == ["deepseek-chat", "llama"]
    assert not np.any(cal.offsets(G, (0.5, 0.9)))  # another level grid: no offsets
    cal.reset("deepseek-chat")
    assert cal.served_models() == ["llama"]
    assert not np.any(cal.offsets(G, LEVELS))
    assert np.all(cal.offsets(other, LEVELS) > 0)
    assert set(cal.to_dict("llama")["groups"]) == {other.key()}


@pytest.mark.parametrize(
    "doc",
    [
        {"format": CONFORMAL_FORMAT + 1, "groups": {}, "shared": {}},
        {"format": CONFORMAL_FORMAT, "groups": {"m|c|d": {"levels": [0.5], "offsets": []}}},
        {
            "format": CONFORMAL_FORMAT,
            "groups": {"m|c|d": {"levels": [0.5], "offsets": [1.0], "n": -1}},
        },
        {
            "format": CONFORMAL_FORMAT,
            "shared": {"m": {"levels": [0.5], "offsets": [1.0, 2.0], "n": 1}},
        },
        {"format": CONFORMAL_FORMAT, "shared": []},
    ],
)
def test_malformed_states_are_refused(doc: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="conformal"):
        AdaptiveCalibrator.from_dict(doc)
