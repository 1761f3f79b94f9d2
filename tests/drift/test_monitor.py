"""The per-group monitor on seeded PIT streams: exact alarm indices, no false alarms."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from drift import DriftMonitor, MonitorConfig, Trigger

if TYPE_CHECKING:  # mypy maps tests/drift/*.py to top-level modules (no __init__.py)
    from _streams import GROUP, alarms, observations, uniform_then_shifted
else:
    from tests.drift._streams import GROUP, alarms, observations, uniform_then_shifted

# 500 calibrated values, then a forecast one sigma too fast (the service got slower).
SHIFT = uniform_then_shifted(seed=7, before=500, after=1500, delta=1.0)


def test_default_config_is_bonferroni_over_the_horizon() -> None:
    cfg = MonitorConfig()
    assert cfg.tests_per_horizon == 2 * 2500 // 25
    assert cfg.test_alpha == pytest.approx(0.01 / 200)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (MonitorConfig(), [(725, "ood")]),
        (MonitorConfig(uniformity_test="ad"), [(600, "ood")]),
        (MonitorConfig(triggers=frozenset({"coverage"})), [(750, "ood")]),
        (MonitorConfig(triggers=frozenset({"adwin_u"})), [(625, "ood")]),
        (MonitorConfig(min_votes=2), [(750, "ood")]),
    ],
    ids=["ks", "ad", "coverage", "adwin-u", "two-votes"],
)
def test_shift_alarms_at_the_exact_index(
    config: MonitorConfig, expected: list[tuple[int, str]]
) -> None:
    assert alarms(DriftMonitor(config), observations(SHIFT)) == expected


@pytest.mark.parametrize(("delta", "index"), [(0.5, 1175), (0.75, 825)])
def test_smaller_shifts_alarm_later(delta: float, index: int) -> None:
    stream = uniform_then_shifted(seed=7, before=500, after=2500, delta=delta)
    assert alarms(DriftMonitor(), observations(stream)) == [(index, "ood")]


@pytest.mark.slow
def test_calibrated_streams_never_alarm_even_without_tolerance() -> None:
    # 40 seeded calibrated streams of 2,500: the Bonferroni level alone keeps them quiet.
    strict = MonitorConfig(ks_tolerance=0.0, coverage_tolerance=0.0)
    for seed in range(40):
        u = [float(x) for x in np.random.default_rng(100 + seed).uniform(size=2500)]
        assert alarms(DriftMonitor(strict), observations(u)) == [], seed
        assert alarms(DriftMonitor(), observations(u)) == [], seed


def test_a_long_calibrated_stream_never_alarms() -> None:
    u = [float(x) for x in np.random.default_rng(2026).uniform(size=10_000)]
    mon = DriftMonitor()
    assert alarms(mon, observations(u)) == []
    (status,) = mon.states()
    assert status.state == "ok"
    assert status.n == 10_000
    assert status.statistics["n_window"] == 500


def test_recovery_needs_hysteresis_and_does_not_flap() -> None:
    stream = uniform_then_shifted(7, 500, 1000, 1.0) + uniform_then_shifted(8, 1500, 0, 0.0)
    mon = DriftMonitor()
    assert alarms(mon, observations(stream)) == [(725, "ood"), (1925, "recovered")]
    assert mon.states()[0].state == "ok"


def test_nothing_is_judged_before_min_samples() -> None:
    wrong = [1.0] * 300
    assert alarms(DriftMonitor(), observations(wrong)) == [(100, "ood")]
    late = MonitorConfig(min_samples=250)
    assert alarms(DriftMonitor(late), observations(wrong)) == [(250, "ood")]


@pytest.mark.parametrize(("trigger", "index"), [("pinball", 850), ("adwin_pinball", 600)])
def test_pinball_triggers(trigger: Trigger, index: int) -> None:
    rng = np.random.default_rng(3)
    loss = rng.exponential(size=1000) * np.r_[np.ones(500), 2 * np.ones(500)]
    mon = DriftMonitor(MonitorConfig(triggers=frozenset({trigger})))
    obs = observations([0.5] * 1000, [float(x) for x in loss])
    assert alarms(mon, obs) == [(index, "ood")]


def test_event_carries_evidence_and_a_deterministic_id() -> None:
    obs = observations(SHIFT)
    (event,) = DriftMonitor().observe_many(obs)
    (again,) = DriftMonitor().observe_many(obs)
    assert event == again
    assert event.at == obs[724].observed_at
    assert event.n_samples == 725
    assert event.model_version == "1"
    stats = event.statistics
    assert stats["ks_pvalue"] < stats["test_alpha"]
    assert stats["ks_distance"] > 0.08
    assert stats["u_mean"] > 0.6
    assert set(stats) >= {"coverage_90", "binom_pvalue", "pinball_ratio", "adwin_u", "votes"}


def test_groups_are_independent_and_reset_forgets_a_model() -> None:
    other = GROUP.model_copy(update={"device": "h100"})
    third = GROUP.model_copy(update={"served_model": "llama"})
    mon = DriftMonitor()
    mon.observe_many(observations([1.0] * 100, group=other))
    mon.observe_many(observations([0.5] * 10))
    mon.observe_many(observations([0.5] * 10, group=third))
    states = {s.group: s for s in mon.states()}
    assert states[other].state == "ood"
    assert states[GROUP].state == "ok"
    assert states[GROUP].statistics == {}
    mon.reset("deepseek-chat")
    assert [s.group for s in mon.states()] == [third]


def test_config_rejects_inconsistent_thresholds() -> None:
    with pytest.raises(ValueError, match="min_samples"):
        MonitorConfig(window=50, min_samples=100)
    with pytest.raises(ValueError, match="min_votes"):
        MonitorConfig(min_votes=3)
