"""Debounced retraining requests: at most one per served model per cooldown.

Example:
    >>> from datetime import UTC, datetime, timedelta
    >>> d = RetrainDebouncer(cooldown_s=3600)
    >>> t = datetime(2026, 4, 11, tzinfo=UTC)
    >>> d.should_request("m", t), d.should_request("m", t + timedelta(minutes=59))
    (True, False)
    >>> d.should_request("other", t), d.should_request("m", t + timedelta(hours=1))
    (True, True)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime


class RetrainDebouncer:
    """Turns a burst of OOD events into one retraining request per cooldown.

    Args:
        cooldown_s: Seconds after a granted request during which the same served model
            gets no other.
    """

    def __init__(self, cooldown_s: float = 3600.0) -> None:
        if cooldown_s < 0:
            raise ValueError(f"cooldown_s must be >= 0, got {cooldown_s}")
        self.cooldown_s = cooldown_s
        self._last: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def should_request(self, served_model: str, now: datetime) -> bool:
        """Whether to request retraining of ``served_model`` now; a ``True`` starts a cooldown."""
        with self._lock:
            last = self._last.get(served_model)
            if last is not None and (now - last).total_seconds() < self.cooldown_s:
                return False
            self._last[served_model] = now
            return True

    def last_request(self, served_model: str) -> datetime | None:
        """When the last granted request for ``served_model`` was made."""
        with self._lock:
            return self._last.get(served_model)

    def snapshot(self) -> dict[str, datetime]:
        """The latest granted request of every served model (to persist the cooldowns)."""
        with self._lock:
            return dict(self._last)

    def restore(self, last: Mapping[str, datetime]) -> None:
        """Take the cooldowns of :meth:`snapshot` (a judge that took over continues them)."""
        with self._lock:
            self._last = dict(last)
