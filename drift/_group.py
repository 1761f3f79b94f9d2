"""The state machine of one group: windows, detectors, tests, hysteresis.

Every ``test_every`` observations (once ``min_samples`` are in), the group runs a
round: the windowed uniformity test and the coverage test on the last ``window`` u
values, the pinball-loss ratio, and the ADWIN flags. An ``"ok"`` group turns ``"ood"``
when at least ``min_votes`` of the configured triggers fire in one round; an ``"ood"``
group turns back only after ``recover_tests`` consecutive rounds in which every windowed
test has p-value >= ``recover_pvalue`` (hysteresis: the alarm level is far stricter).

:meth:`GroupMonitor.snapshot` and :meth:`GroupMonitor.restore` carry all of it across
processes (:class:`drift.GroupSnapshot`): a restored group continues exactly as the
original would have (same next round, same next event).
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

import numpy as np

from core.drift import (
    DriftEvent,
    DriftGroup,
    DriftKind,
    DriftObservation,
    GroupState,
    GroupStatus,
)
from drift._adwin import AdwinDetector
from drift._config import MonitorConfig, Trigger
from drift._coverage import coverage_test
from drift._pinball import pinball_ratio
from drift._state import STATE_FORMAT, GroupSnapshot, pack, unpack
from drift._uniformity import ad_uniform, ks_distance, ks_uniform


class GroupMonitor:
    """Statistics and state of one :class:`~core.drift.DriftGroup`.

    Args:
        group: The group.
        config: Thresholds.
    """

    def __init__(self, group: DriftGroup, config: MonitorConfig) -> None:
        self.group = group
        self.config = config
        self.state: GroupState = "ok"
        self.since: datetime | None = None
        self.n = 0
        self.model_version: str | None = None
        self.statistics: dict[str, float] = {}
        self._u: deque[float] = deque(maxlen=config.window)
        self._loss: deque[float] = deque(maxlen=config.window)
        self._reference: list[float] = []
        self._adwin_u = AdwinDetector(config.adwin_delta)
        self._adwin_loss = AdwinDetector(config.adwin_delta)
        self._streak = 0

    def observe(self, obs: DriftObservation) -> DriftEvent | None:
        """Feed one observation; the event when the group changed state, else ``None``."""
        cfg = self.config
        self.n += 1
        self.model_version = obs.model_version
        self._u.append(obs.u)
        self._loss.append(obs.pinball)
        if len(self._reference) < cfg.min_samples:
            self._reference.append(obs.pinball)
        self._adwin_u.update(obs.u)
        self._adwin_loss.update(obs.pinball)
        if self.n < cfg.min_samples or self.n % cfg.test_every:
            return None
        stats, fired, calm = self._round()
        self.statistics = stats
        kind: DriftKind | None = None
        if self.state == "ok" and len(fired) >= cfg.min_votes:
            kind, self.state, self._streak = "ood", "ood", 0
        elif self.state == "ood":
            self._streak = self._streak + 1 if calm else 0
            if self._streak >= cfg.recover_tests:
                kind, self.state, self._streak = "recovered", "ok", 0
        if kind is None:
            return None
        self.since = obs.observed_at
        return DriftEvent.create(
            self.group, kind, obs.observed_at, obs.model_version, self.n, dict(stats)
        )

    def _recent(self, det: AdwinDetector) -> bool:
        last = det.last_detection
        return last is not None and det.n - last < self.config.window

    def _round(self) -> tuple[dict[str, float], set[Trigger], bool]:
        """One test round: (statistics, fired triggers, every windowed test calm)."""
        cfg = self.config
        u = np.fromiter(self._u, dtype=np.float64)
        loss = np.fromiter(self._loss, dtype=np.float64)
        dist = ks_distance(u)
        if cfg.uniformity_test == "ks":
            _, p_unif = ks_uniform(u, cfg.ks_tolerance)
        else:
            _, p_unif = ad_uniform(u)
        cov, p_cov = coverage_test(u, cfg.coverage_level, cfg.coverage_tolerance)
        ratio = pinball_ratio(loss, np.asarray(self._reference, dtype=np.float64))
        u_shift = abs(self._adwin_u.mean - 0.5)
        ref_loss = float(np.mean(self._reference))
        loss_rise = self._adwin_loss.mean / ref_loss - 1.0 if ref_loss > 0 else 0.0
        adwin_u = self._recent(self._adwin_u) and u_shift >= cfg.adwin_min_shift
        adwin_loss = self._recent(self._adwin_loss) and loss_rise >= cfg.adwin_min_shift
        alpha = cfg.test_alpha
        checks: dict[Trigger, bool] = {
            "uniformity": p_unif < alpha and dist > cfg.ks_tolerance,
            "coverage": p_cov < alpha,
            "adwin_u": adwin_u,
            "adwin_pinball": adwin_loss,
            "pinball": ratio >= cfg.pinball_ratio,
        }
        fired = {t for t in cfg.triggers if checks[t]}
        level = f"{round(cfg.coverage_level * 100):d}"
        stats = {
            "n_window": float(u.shape[0]),
            "u_mean": float(u.mean()),
            "ks_distance": dist,
            f"{cfg.uniformity_test}_pvalue": p_unif,
            f"coverage_{level}": cov,
            "binom_pvalue": p_cov,
            "pinball_mean": float(loss.mean()),
            "pinball_ratio": ratio,
            "adwin_u": float(adwin_u),
            "adwin_u_mean": self._adwin_u.mean,
            "adwin_pinball": float(adwin_loss),
            "adwin_pinball_mean": self._adwin_loss.mean,
            "test_alpha": alpha,
            "votes": float(len(fired)),
        }
        calm = min(p_unif, p_cov) >= cfg.recover_pvalue
        return stats, fired, calm

    def status(self) -> GroupStatus:
        """A snapshot of this group."""
        return GroupStatus(
            group=self.group,
            state=self.state,
            n=self.n,
            model_version=self.model_version,
            since=self.since,
            statistics=dict(self.statistics),
        )

    def snapshot(self) -> GroupSnapshot:
        """Everything needed to continue this group elsewhere (see :mod:`drift._state`)."""
        return GroupSnapshot(
            format=STATE_FORMAT,
            group=self.group,
            state=self.state,
            since=self.since,
            n=self.n,
            model_version=self.model_version,
            statistics=dict(self.statistics),
            streak=self._streak,
            u=pack(self._u),
            loss=pack(self._loss),
            reference=pack(self._reference),
            adwin_u=self._adwin_u.snapshot(),
            adwin_loss=self._adwin_loss.snapshot(),
        )

    @classmethod
    def restore(cls, snap: GroupSnapshot, config: MonitorConfig) -> GroupMonitor:
        """The group ``snap`` describes, continuing under ``config``.

        Under the config that wrote it, the result behaves exactly as the original.
        Under another one, the windows keep their newest ``window`` values, the
        reference its first ``min_samples``, and ADWIN is rebuilt from the window when
        its ``delta`` changed.

        Raises:
            ValueError: ``snap`` has another format version or malformed windows.
        """
        if snap.format != STATE_FORMAT:
            raise ValueError(f"drift state format {snap.format}, expected {STATE_FORMAT}")
        mon = cls(snap.group, config)
        mon.state, mon.since, mon.n = snap.state, snap.since, snap.n
        mon.model_version, mon.statistics = snap.model_version, dict(snap.statistics)
        mon._streak = snap.streak
        mon._u.extend(unpack(snap.u))
        mon._loss.extend(unpack(snap.loss))
        mon._reference = unpack(snap.reference)[: config.min_samples]
        delta = config.adwin_delta
        mon._adwin_u = AdwinDetector.restore(snap.adwin_u, delta, replay=mon._u)
        mon._adwin_loss = AdwinDetector.restore(snap.adwin_loss, delta, replay=mon._loss)
        return mon
