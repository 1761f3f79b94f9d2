"""A short-lived cache of endpoint features, so forecasts run no per-request query.

The endpoint features (``ep_completions``, ``ep_median_tokens_per_s``,
``ep_median_latency_s``) of one (served_model, device) come from the feature store
at most once per TTL; every forecast in between reads them from memory. Once a value
has expired, the forecast that finds it so still gets it and starts a refresh off the
forecast path (one at a time per pair): only a pair's very first forecast waits for
the store. A forecast never waits on a busy store (the DuckDB file being reopened, a
checkpoint, a PostgreSQL failover): the soak saw single forecasts take 70-120 ms in
minutes where a refresh waited for the store. A store that fails to answer gives "no
endpoint history" (the model saw that in training too) rather than failing the
forecast.

The drift judge asks :meth:`EndpointStatsCache.as_of` instead: the features as they
were when a completion was *submitted* (what its forecast saw, and what its training
rows saw), not as they are when the completion is judged. Judged at judge time, a
completion's features would include itself and everything that finished since (the
point-in-time skew that made a steady stream look drifted).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from feature_store import EndpointStats, RecordStore

logger = logging.getLogger(__name__)

#: Endpoint features when the store knows nothing (or cannot answer).
NO_HISTORY = EndpointStats(completions=0, median_tokens_per_s=None, median_latency_s=None)


@dataclass(frozen=True, slots=True)
class _Entry:
    stats: EndpointStats
    expires: float


class EndpointStatsCache:
    """Endpoint features per (served_model, device), refreshed at most every ``ttl_s``.

    Thread-safe: forecasts of several worker threads share it.

    Args:
        store: The feature store to query.
        ttl_s: How long a value is served before it is queried again, seconds.
        window: Completions the statistics look back over.
        max_entries: Most (served_model, device) pairs kept (least recently used go).
        clock: Monotonic clock in seconds (injectable for tests).
        spawn: Runs a refresh off the caller's thread (default: a new daemon thread;
            tests pass ``lambda job: job()``).
    """

    def __init__(
        self,
        store: RecordStore,
        ttl_s: float,
        window: int,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        spawn: Callable[[Callable[[], object]], object] | None = None,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.window = window
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._past: OrderedDict[tuple[str, str, int], EndpointStats] = OrderedDict()
        self._lock = threading.Lock()
        self._refreshing: set[tuple[str, str]] = set()
        self._spawn = spawn or _daemon

    def get(self, served_model: str, device: str) -> EndpointStats:
        """The endpoint features of (served_model, device), at most TTL old.

        An expired value is still answered while its refresh runs in the background;
        the first call of a pair queries the store itself.
        """
        key = (served_model, device)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                if entry.expires > now or key in self._refreshing:
                    return entry.stats
            self._refreshing.add(key)
        if entry is None:
            return self._refresh(key)
        self._spawn(lambda: self._refresh(key))
        return entry.stats

    def _refresh(self, key: tuple[str, str]) -> EndpointStats:
        """Query ``key``'s features and keep them for ``ttl_s`` (the caller marked it).

        Never raises: :meth:`_query` answers a failing store with ``NO_HISTORY``.
        """
        stats = self._query(*key)
        with self._lock:
            self._entries[key] = _Entry(stats, self._clock() + self.ttl_s)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            self._refreshing.discard(key)
        return stats

    def _query(self, served_model: str, device: str) -> EndpointStats:
        try:
            return self.store.endpoint_stats(
                served_model, device, datetime.now(UTC), window=self.window
            )
        except Exception:  # the hot path must not fail because the store hiccups
            logger.warning(
                "endpoint features unavailable for %s on %s", served_model, device, exc_info=True
            )
            return NO_HISTORY

    def as_of(self, served_model: str, device: str, at: datetime) -> EndpointStats:
        """The endpoint features of (served_model, device) as a forecast at ``at`` saw them.

        Point in time at the cache's resolution: the statistics at the start of the
        ``ttl_s`` bucket holding ``at`` (a live forecast reads values up to ``ttl_s``
        old), over completions that finished before it. Buckets are remembered (up to
        ``max_entries``), so a judged batch costs one query per (endpoint, bucket).

        Raises:
            Exception: Whatever the store raises (a judge must not judge on made-up
                features; the caller counts the failure).
        """
        step = self.ttl_s if self.ttl_s > 0 else 1.0
        bucket = int(at.timestamp() // step)
        key = (served_model, device, bucket)
        with self._lock:
            stats = self._past.get(key)
            if stats is not None:
                self._past.move_to_end(key)
                return stats
        start = datetime.fromtimestamp(bucket * step, UTC)
        stats = self.store.endpoint_stats(served_model, device, start, window=self.window)
        with self._lock:
            self._past[key] = stats
            while len(self._past) > self.max_entries:
                self._past.popitem(last=False)
        return stats


def _daemon(job: Callable[[], object]) -> None:
    threading.Thread(target=job, name="tailcast-endpoint-stats", daemon=True).start()
