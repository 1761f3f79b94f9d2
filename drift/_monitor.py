"""The drift monitor: one :class:`~drift._group.GroupMonitor` per group, thread-safe.

Example:
    >>> from datetime import UTC, datetime
    >>> from core.drift import DriftGroup, DriftObservation
    >>> g = DriftGroup(served_model="m", prompt_class="default", device="gpu")
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> mon = DriftMonitor(MonitorConfig(min_samples=50, window=100, test_every=10))
    >>> calm = [DriftObservation(group=g, u=(i * 0.618) % 1, pinball=1.0, observed_at=t)
    ...         for i in range(200)]
    >>> mon.observe_many(calm), mon.states()[0].state
    ([], 'ok')
    >>> slow = [DriftObservation(group=g, u=0.97, pinball=3.0, observed_at=t) for _ in range(60)]
    >>> [(e.kind, e.n_samples) for e in mon.observe_many(slow)]
    [('ood', 230)]
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from core.drift import DriftEvent, DriftGroup, DriftObservation, GroupStatus
from drift._config import MonitorConfig
from drift._group import GroupMonitor


class DriftMonitor:
    """Per-group calibration monitor of issued forecasts.

    Args:
        config: Thresholds; defaults to :class:`MonitorConfig` ().
    """

    def __init__(self, config: MonitorConfig | None = None) -> None:
        self.config = config or MonitorConfig()
        self._groups: dict[DriftGroup, GroupMonitor] = {}
        self._lock = threading.Lock()

    def observe(self, obs: DriftObservation) -> list[DriftEvent]:
        """Feed one observation; the state changes it caused (zero or one event)."""
        with self._lock:
            mon = self._groups.get(obs.group)
            if mon is None:
                mon = self._groups[obs.group] = GroupMonitor(obs.group, self.config)
            event = mon.observe(obs)
        return [] if event is None else [event]

    def observe_many(self, obs: Iterable[DriftObservation]) -> list[DriftEvent]:
        """Feed observations in order; every event they caused, in order."""
        events: list[DriftEvent] = []
        for o in obs:
            events.extend(self.observe(o))
        return events

    def states(self) -> list[GroupStatus]:
        """A snapshot of every group, sorted by group key."""
        with self._lock:
            mons = sorted(self._groups.values(), key=lambda m: m.group.key())
            return [m.status() for m in mons]

    def reset(self, served_model: str) -> None:
        """Forget every group of ``served_model`` (e.g. a new model version took over)."""
        with self._lock:
            for g in [g for g in self._groups if g.served_model == served_model]:
                del self._groups[g]
