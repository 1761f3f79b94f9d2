"""Snapshots of the monitor: a restored monitor continues exactly as an uninterrupted one."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from core.drift import DriftGroup, DriftObservation
from drift import (
    JUDGE_KEY,
    STATE_FORMAT,
    DriftMonitor,
    GroupSnapshot,
    JudgeSnapshot,
    MonitorConfig,
    RetrainDebouncer,
)

if TYPE_CHECKING:  # mypy maps tests/drift/*.py to top-level modules (no __init__.py)
    from _streams import GROUP, T0, alarms, observations, shifted, uniform_then_shifted
else:
    from tests.drift._streams import (
        GROUP,
        T0,
        alarms,
        observations,
        shifted,
        uniform_then_shifted,
    )

#: Small windows and every trigger, so short streams reach rounds, ADWIN and hysteresis.
SMALL = MonitorConfig(
    window=120,
    min_samples=40,
    test_every=10,
    triggers=frozenset({"uniformity", "coverage", "adwin_u", "adwin_pinball", "pinball"}),
    recover_tests=2,
)
OTHER = DriftGroup(served_model="deepseek-chat", prompt_class="code", device="deepseek-api")


def _stream(seed: int, n: int, shift_at: int, delta: float, back_at: int) -> list[DriftObservation]:
    """Two interleaved groups: calibrated, off by ``delta`` sigma, calibrated again."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(size=n)
    off = (np.arange(n) >= shift_at) & (np.arange(n) < back_at)
    u = np.where(off, shifted(v, delta), v)
    loss = rng.exponential(1.0, size=n) * np.where(off, 1.0 + abs(delta), 1.0)
    return [
        DriftObservation(
            group=GROUP if i % 3 else OTHER,
            u=float(u[i]),
            pinball=float(loss[i]),
            model_version="1",
            observed_at=T0 + timedelta(seconds=i),
        )
        for i in range(n)
    ]


def _through_json(monitor: DriftMonitor) -> DriftMonitor:
    """A new monitor restored from ``monitor``'s snapshot after a JSON round trip."""
    restored = DriftMonitor(monitor.config)
    assert restored.restore(json.loads(json.dumps(monitor.snapshot()))) == []
    return restored


@hsettings(max_examples=30)
@given(
    seed=st.integers(0, 2**31),
    cut=st.integers(0, 900),
    shift_at=st.integers(0, 600),
    delta=st.sampled_from([0.0, 0.6, 1.5, -1.2]),
    length=st.integers(0, 500),
)
def test_a_restored_monitor_continues_exactly_like_an_uninterrupted_one(
    seed: int, cut: int, shift_at: int, delta: float, length: int
) -> None:
    obs = _stream(seed, 900, shift_at, delta, shift_at + length)
    uninterrupted = DriftMonitor(SMALL)
    before = uninterrupted.observe_many(obs[:cut])
    after = uninterrupted.observe_many(obs[cut:])

    interrupted = DriftMonitor(SMALL)
    assert interrupted.observe_many(obs[:cut]) == before
    restored = _through_json(interrupted)
    assert restored.states() == interrupted.states()  # states, flags, n, statistics
    assert restored.observe_many(obs[cut:]) == after  # the same next events
    assert restored.snapshot() == uninterrupted.snapshot()  # windows and detectors


def test_an_ood_group_keeps_its_flag_and_hysteresis_across_a_restore() -> None:
    obs = [o for o in _stream(3, 900, 200, 1.5, 450) if o.group == GROUP]
    expected = alarms(DriftMonitor(SMALL), obs)
    kinds = [k for _, k in expected]
    assert kinds[:2] == ["ood", "recovered"], expected
    ood_at, recovered_at = expected[0][0], expected[1][0]
    cut = (ood_at + recovered_at) // 2  # OOD, part way through its calm rounds
    first = DriftMonitor(SMALL)
    first.observe_many(obs[:cut])
    assert [s.state for s in first.states() if s.group == GROUP] == ["ood"]
    restored = _through_json(first)
    assert [s.state for s in restored.states() if s.group == GROUP] == ["ood"]
    resumed = [(cut + i, k) for i, k in alarms(restored, obs[cut:])]
    assert resumed == [e for e in expected if e[0] > cut]


def test_an_adwin_alarm_comes_at_the_same_index_after_a_restore() -> None:
    config = MonitorConfig(triggers=frozenset({"adwin_u"}))
    obs = observations(uniform_then_shifted(seed=7, before=500, after=1500, delta=1.0))
    assert alarms(DriftMonitor(config), obs) == [(625, "ood")]
    first = DriftMonitor(config)
    first.observe_many(obs[:610])
    restored = _through_json(first)
    assert [(610 + i, k) for i, k in alarms(restored, obs[610:])] == [(625, "ood")]


def test_a_snapshot_is_versioned_bounded_and_checked() -> None:
    monitor = DriftMonitor()
    monitor.observe_many(observations(uniform_then_shifted(0, 500, 2500, 1.0)))
    states = monitor.snapshot()
    (text,) = states.values()
    assert len(text) < 20_000  # windows are bounded: 3,000 observations, 16 kB
    snap = GroupSnapshot.model_validate_json(text)
    assert (snap.format, snap.n, snap.state) == (STATE_FORMAT, 3000, "ood")
    newer = snap.model_copy(update={"format": STATE_FORMAT + 1}).model_dump_json()
    moved = {"other|default|gpu": text}
    bad = {GROUP.key(): newer, "x|y|z": "{not json", **moved}
    fresh = DriftMonitor()
    assert sorted(fresh.restore(bad)) == sorted(bad)
    assert fresh.states() == []


def test_another_river_version_rebuilds_adwin_from_the_window() -> None:
    monitor = DriftMonitor(SMALL)
    monitor.observe_many(_stream(seed=1, n=400, shift_at=1000, delta=0.0, back_at=1000))
    snap = GroupSnapshot.model_validate_json(monitor.snapshot()[GROUP.key()])
    old = snap.model_copy(update={"adwin_u": snap.adwin_u.model_copy(update={"river": "0.1"})})
    restored = DriftMonitor(SMALL)
    assert restored.restore({GROUP.key(): old.model_dump_json()}) == []
    again = GroupSnapshot.model_validate_json(restored.snapshot()[GROUP.key()])
    assert again.adwin_u.n == snap.adwin_u.n  # counts kept
    assert again.adwin_u.window != snap.adwin_u.window  # rebuilt from the 120-value window
    assert again.u == snap.u
    assert again.adwin_loss == snap.adwin_loss


def test_take_changes_reports_observed_and_reset_groups_once() -> None:
    monitor = DriftMonitor(SMALL)
    obs = _stream(seed=2, n=6, shift_at=99, delta=0.0, back_at=99)
    monitor.observe_many(obs)
    changes = monitor.take_changes()
    assert sorted(changes) == sorted([GROUP.key(), OTHER.key()])
    assert all(isinstance(t, str) for t in changes.values())
    assert monitor.take_changes() == {}
    monitor.reset("deepseek-chat")
    assert monitor.take_changes() == {GROUP.key(): None, OTHER.key(): None}
    monitor.observe_many(obs)
    monitor.take_changes()
    monitor.reset("deepseek-chat")
    monitor.observe(obs[1])  # reset, then observed again: its new state wins
    assert monitor.take_changes() == {
        OTHER.key(): None,
        GROUP.key(): monitor.snapshot()[GROUP.key()],
    }
    assert [s.n for s in monitor.states()] == [1]


def test_the_debouncer_and_the_judge_snapshot_keep_cooldowns() -> None:
    debouncer = RetrainDebouncer(cooldown_s=3600)
    assert debouncer.should_request("m", T0)
    text = JudgeSnapshot(
        format=STATE_FORMAT, versions={"m": "3"}, retrain_requested_at=debouncer.snapshot()
    ).model_dump_json()
    snap = JudgeSnapshot.model_validate_json(text)
    successor = RetrainDebouncer(cooldown_s=3600)
    successor.restore(snap.retrain_requested_at)
    assert not successor.should_request("m", T0 + timedelta(minutes=30))
    assert successor.should_request("m", T0 + timedelta(hours=1))
    assert snap.versions == {"m": "3"}
    assert "|" not in JUDGE_KEY
    assert "|" in GROUP.key()
