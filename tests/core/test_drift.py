"""core.drift: PIT and pinball of quantile forecasts, event ids, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from pydantic import ValidationError

from core import QuantileForecast
from core.drift import (
    DriftEvent,
    DriftGroup,
    DriftObservation,
    alert_id_for,
    drift_event_id,
    pit_and_pinball,
)

LEVELS = np.array([0.05, 0.1, 0.5, 0.9, 0.95])
G = DriftGroup(served_model="m", prompt_class="default", device="gpu")


def test_pit_matches_quantile_forecast_cdf_row_by_row() -> None:
    rng = np.random.default_rng(0)
    values = np.sort(rng.lognormal(size=(50, 5)), axis=1)
    observed = rng.lognormal(size=50) * 2
    u, _ = pit_and_pinball(LEVELS, values, observed)
    for row, y, ui in zip(values, observed, u, strict=True):
        f = QuantileForecast(levels=tuple(LEVELS), values=tuple(row), lower=0.0)
        assert ui == pytest.approx(f.cdf(float(y)))


def test_pinball_is_the_mean_quantile_loss() -> None:
    values = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    _, loss = pit_and_pinball(LEVELS, values, np.array([3.0]))
    by_hand = [0.05 * 2, 0.1 * 1, 0.0, 0.1 * 1, 0.05 * 2]
    assert loss[0] == pytest.approx(np.mean(by_hand))


def test_calibrated_draws_give_uniform_pit() -> None:
    rng = np.random.default_rng(1)
    f = QuantileForecast(levels=tuple(LEVELS), values=(1.0, 1.5, 3.0, 6.0, 8.0), lower=0.0)
    draws = f.sample(20_000, rng)
    u, _ = pit_and_pinball(LEVELS, np.tile(np.asarray(f.values), (20_000, 1)), draws)
    assert np.histogram(u, bins=10, range=(0, 1))[0] / 20_000 == pytest.approx(
        np.full(10, 0.1), abs=0.01
    )


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match=r"\(n, K\)"):
        pit_and_pinball(LEVELS, np.ones((3, 4)), np.ones(3))
    u, loss = pit_and_pinball(LEVELS, np.zeros((0, 5)), np.zeros(0))
    assert u.shape == loss.shape == (0,)


def test_event_ids_are_deterministic_and_distinguish_their_inputs() -> None:
    t = datetime(2026, 4, 11, 9, tzinfo=timezone(timedelta(hours=2)))
    e = DriftEvent.create(G, "ood", t, "3", 120, {"ks_pvalue": 1e-7})
    assert e.event_id == drift_event_id(G, "ood", t.astimezone(UTC), "3")
    assert e.at.tzinfo == UTC
    others = {
        drift_event_id(G, "recovered", t, "3"),
        drift_event_id(G, "ood", t + timedelta(microseconds=1), "3"),
        drift_event_id(G, "ood", t, "4"),
        drift_event_id(G.model_copy(update={"device": "cpu"}), "ood", t, "3"),
    }
    assert e.event_id not in others
    assert len(others) == 4
    assert alert_id_for(e.event_id, "http://a") != alert_id_for(e.event_id, "http://b")


def test_observations_are_validated() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError, match="u"):
        DriftObservation(group=G, u=1.5, pinball=0.0, observed_at=t)
    with pytest.raises(ValidationError, match="observed_at"):
        DriftObservation(group=G, u=0.5, pinball=0.0, observed_at=datetime(2026, 1, 1))
