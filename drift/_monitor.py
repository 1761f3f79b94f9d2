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

Persistence: :meth:`DriftMonitor.snapshot` gives every group as JSON text by group
key, :meth:`DriftMonitor.restore` takes them back, and :meth:`DriftMonitor.take_changes`
hands a judge what to save after a batch (the groups changed since the last call, and
the keys of groups a reset dropped):

    >>> again = DriftMonitor(mon.config)
    >>> again.restore(mon.snapshot()), again.states() == mon.states()
    ([], True)
    >>> sorted(mon.take_changes()), mon.take_changes()
    (['m|default|gpu'], {})
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping

from pydantic import ValidationError

from core.drift import DriftEvent, DriftGroup, DriftObservation, GroupStatus
from drift._config import MonitorConfig
from drift._group import GroupMonitor
from drift._state import GroupSnapshot

logger = logging.getLogger(__name__)


class DriftMonitor:
    """Per-group calibration monitor of issued forecasts.

    Args:
        config: Thresholds; defaults to :class:`MonitorConfig` ().
    """

    def __init__(self, config: MonitorConfig | None = None) -> None:
        self.config = config or MonitorConfig()
        self._groups: dict[DriftGroup, GroupMonitor] = {}
        self._changed: dict[DriftGroup, None] = {}  # observed since take_changes (ordered)
        self._dropped: set[str] = set()  # keys reset since take_changes
        self._lock = threading.Lock()

    def observe(self, obs: DriftObservation) -> list[DriftEvent]:
        """Feed one observation; the state changes it caused (zero or one event)."""
        with self._lock:
            mon = self._groups.get(obs.group)
            if mon is None:
                mon = self._groups[obs.group] = GroupMonitor(obs.group, self.config)
            event = mon.observe(obs)
            self._changed[obs.group] = None
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
                self._changed.pop(g, None)
                self._dropped.add(g.key())

    # --- persistence ------------------------------------------------------------------
    def snapshot(self) -> dict[str, str]:
        """Every group as JSON text (:class:`drift.GroupSnapshot`), by group key."""
        with self._lock:
            return {g.key(): m.snapshot().model_dump_json() for g, m in self._groups.items()}

    def restore(self, states: Mapping[str, str]) -> list[str]:
        """Take the groups of ``states`` (from :meth:`snapshot`), replacing those held.

        A state that is not a valid snapshot of this format (or whose key is not its
        group's) is skipped and logged; its group starts afresh when next observed.
        Restoring marks nothing as changed.

        Returns:
            The keys that were skipped.
        """
        groups: dict[DriftGroup, GroupMonitor] = {}
        skipped: list[str] = []
        for key, text in states.items():
            try:
                snap = GroupSnapshot.model_validate_json(text)
                if snap.group.key() != key:
                    raise ValueError(f"the state of group {snap.group.key()!r}")
                groups[snap.group] = GroupMonitor.restore(snap, self.config)
            except (ValidationError, ValueError) as exc:
                logger.warning("drift state %r not restored: %s", key, exc)
                skipped.append(key)
        with self._lock:
            self._groups = groups
            self._changed.clear()
            self._dropped.clear()
        return skipped

    def take_changes(self) -> dict[str, str | None]:
        """What changed since the last call: group key -> JSON text, or ``None`` (reset).

        A group reset and observed again since the last call has its new state; the
        caller saves the texts and deletes the ``None`` keys (and, if saving fails,
        merges the result into the next call's before saving again).
        """
        with self._lock:
            out: dict[str, str | None] = dict.fromkeys(sorted(self._dropped))
            for g in self._changed:
                out[g.key()] = self._groups[g].snapshot().model_dump_json()
            self._changed.clear()
            self._dropped.clear()
        return out
