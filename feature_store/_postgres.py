"""The PostgreSQL feature store: one database shared by every replica, CLI and job.

Chosen with ``TAILCAST_STORE_URL=postgresql://...`` (see :func:`feature_store.open_store`
and ``docs/decisions/2026-12-06-shared-store.md``). Concurrency model: any number of
processes open the same database; each holds a small connection pool
(psycopg-pool). Every write is one PostgreSQL transaction, idempotent on its natural
key, so concurrent writers of the same record store it once; readers see committed
data only. Validation and training-frame SQL are the embedded store's DuckDB SQL, run
in-process on Arrow copies (:mod:`feature_store._pg_ingest`,
:mod:`feature_store._pg_frames`), so both backends behave alike.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt
import psycopg
import pyarrow as pa
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from core import IngestReport, StoreError
from feature_store import _frames, _pg_coord, _pg_frames
from feature_store._base import EndpointStats, PreviousCall, Progress, RecordStore, StoreStats
from feature_store._pg_drift import PgDriftTables
from feature_store._pg_ingest import create_staging_tables, prepared_slices, store_prepared
from feature_store._pg_schema import migrate
from feature_store._prefetch import prefetch
from feature_store._stats import summarize

_GROUPS = (
    "SELECT served_model, device, count(*), count(latency_s), min(submitted_at), "
    "max(submitted_at), percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_s), "
    "percentile_cont(0.9) WITHIN GROUP (ORDER BY latency_s), "
    "percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_s) FROM records "
    'GROUP BY 1, 2 ORDER BY served_model COLLATE "C", device COLLATE "C"'
)
_EMBEDDINGS = (
    'SELECT encoder_id, count(*) FROM embeddings GROUP BY 1 ORDER BY encoder_id COLLATE "C"'
)


def redact(url: str) -> str:
    """``url`` without its password (in the authority or as a ``password`` parameter)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", "@", 1)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _utc(conn: psycopg.Connection[TupleRow]) -> None:
    conn.execute("SET TimeZone TO 'UTC'")
    conn.commit()


class PostgresStore(PgDriftTables, RecordStore):
    """A :class:`RecordStore` in a PostgreSQL database (migrated on open).

    Args:
        url: A libpq connection URL (``postgresql://user:pass@host:5432/db``).
        min_size: Connections the pool keeps open.
        max_size: Most connections the pool opens (concurrent store calls beyond it wait).
        timeout_s: Seconds to wait for the server when opening, and for a free
            connection on each call.

    Raises:
        StoreError: When the database cannot be reached or migrated.
    """

    def __init__(
        self, url: str, *, min_size: int = 1, max_size: int = 8, timeout_s: float = 30.0
    ) -> None:
        self._url = url
        self.path = redact(url)
        self._locks: weakref.WeakSet[_pg_coord.PgStoreLock] = weakref.WeakSet()
        try:  # one direct connection first: a bad URL fails at once, with libpq's reason
            with psycopg.connect(url, connect_timeout=max(2, int(timeout_s))) as conn:
                migrate(conn)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open feature store {self.path}: {exc}") from exc
        self._pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout_s,
            configure=_utc,
            check=ConnectionPool.check_connection,
            name=f"tailcast-store {self.path}",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=timeout_s)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreError(f"cannot open feature store {self.path}: {exc}") from exc

    # --- writes ------------------------------------------------------------------
    def ingest_batches(
        self,
        batches: Iterable[pa.Table],
        source: str | None = None,
        progress: Progress | None = None,
        *,
        judge: bool = True,
    ) -> IngestReport:
        """See :meth:`RecordStore.ingest_batches` (one PostgreSQL transaction)."""
        started = datetime.now(UTC)
        report = IngestReport(accepted=0, duplicates=0)
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            create_staging_tables(cur)
            for part in prefetch(prepared_slices(prefetch(batches))):
                report = report + store_prepared(cur, part, source, judge)
                if progress is not None:
                    progress(part.inputs)
            cur.execute(
                "INSERT INTO ingest_log (source, started_at, finished_at, accepted, "
                "duplicates, rejected) VALUES (%s, %s, now(), %s, %s, %s)",
                [source, started, report.accepted, report.duplicates, len(report.rejected)],
            )
        return report

    def put_embeddings(
        self, encoder_id: str, prompt_sha256: Sequence[str], vectors: npt.NDArray[np.float32]
    ) -> int:
        """See :meth:`RecordStore.put_embeddings` (stored as little-endian float32 bytes)."""
        if len(prompt_sha256) != len(vectors):
            raise ValueError(f"{len(prompt_sha256)} keys but {len(vectors)} vectors")
        blobs = [np.asarray(v, "<f4").tobytes() for v in vectors]
        with self._pool.connection() as conn:
            cur = conn.execute(
                "INSERT INTO embeddings SELECT k, %s, v, now() "
                "FROM unnest(%s::text[], %s::bytea[]) AS u(k, v) ON CONFLICT DO NOTHING",
                [encoder_id, list(prompt_sha256), blobs],
            )
            return cur.rowcount

    # --- reads -------------------------------------------------------------------
    def get_embeddings(
        self, encoder_id: str, prompt_sha256: Sequence[str]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        """See :meth:`RecordStore.get_embeddings`."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT prompt_sha256, vector FROM embeddings "
                "WHERE encoder_id = %s AND prompt_sha256 = ANY(%s)",
                [encoder_id, list(prompt_sha256)],
            ).fetchall()
        mask = np.zeros(len(prompt_sha256), dtype=np.bool_)
        if not rows:
            return mask, np.zeros((len(prompt_sha256), 0), dtype=np.float32)
        found = {str(k): np.frombuffer(bytes(v), "<f4") for k, v in rows}
        dim = len(next(iter(found.values())))
        out = np.zeros((len(prompt_sha256), dim), dtype=np.float32)
        for i, key in enumerate(prompt_sha256):
            vector = found.get(key)
            if vector is not None:
                out[i] = vector
                mask[i] = True
        return mask, out

    def prompts_missing_embeddings(self, encoder_id: str) -> Iterator[tuple[str, str]]:
        """See :meth:`RecordStore.prompts_missing_embeddings`."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT sha256, text FROM prompts p WHERE NOT EXISTS (SELECT 1 FROM embeddings "
                "e WHERE e.prompt_sha256 = p.sha256 AND e.encoder_id = %s) "
                'ORDER BY sha256 COLLATE "C"',
                [encoder_id],
            ).fetchall()
        yield from ((str(s), str(t)) for s, t in rows)

    def training_frame(
        self,
        served_model: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        columns: Sequence[str] | None = None,
        *,
        as_of: datetime | None = None,
        require: Sequence[str] = ("latency_s",),
        endpoint_window: int = 50,
    ) -> pa.Table:
        """See :meth:`RecordStore.training_frame` (same SQL as the DuckDB store)."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            return _pg_frames.training_frame(
                cur,
                served_model,
                start,
                end,
                columns,
                as_of=as_of or end,
                require=require,
                window=endpoint_window,
            )

    def endpoint_stats(
        self, served_model: str, device: str, at: datetime, window: int = 50
    ) -> EndpointStats:
        """See :meth:`RecordStore.endpoint_stats` (one index scan of at most ``window`` rows)."""
        sql = _pg_frames.endpoint_stats_sql(window)
        with self._pool.connection() as conn:
            rows = conn.execute(sql, [served_model, device, at]).fetchall()
        return EndpointStats(
            completions=len(rows),
            median_tokens_per_s=_pg_frames.median(r[0] for r in rows),
            median_latency_s=_pg_frames.median(r[1] for r in rows),
        )

    def previous_calls(self, request_ids: Sequence[str]) -> dict[str, PreviousCall]:
        """See :meth:`RecordStore.previous_calls` (the workflows' calls by index)."""
        if not request_ids:
            return {}
        sql = _frames.previous_calls_sql("= ANY(%(ids)s)", ' COLLATE "C"')
        with self._pool.connection() as conn:
            rows = conn.execute(sql, {"ids": list(request_ids)}).fetchall()
        return {rid: PreviousCall(output_tokens=out, latency_s=lat) for rid, out, lat in rows}

    def stats(self) -> StoreStats:
        """See :meth:`RecordStore.stats` (``path`` is the URL without its password)."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return summarize(
                self.path, lambda sql: conn.execute(sql).fetchall(), _GROUPS, _EMBEDDINGS
            )

    # --- coordination ------------------------------------------------------------
    def try_lock(self, name: str) -> _pg_coord.PgStoreLock | None:
        """See :meth:`RecordStore.try_lock`: a session advisory lock on its own connection.

        Locks still held when the store closes are released then.
        """
        try:
            lock = _pg_coord.try_lock(self._url, name)
        except psycopg.Error as exc:
            raise StoreError(f"cannot take lock {name!r} in {self.path}: {exc}") from exc
        if lock is not None:
            self._locks.add(lock)
        return lock

    def drift_inbox_take(self, limit: int = 1000) -> pa.Table:
        """See :meth:`RecordStore.drift_inbox_take`."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            return _pg_coord.inbox_take(cur, limit)

    def drift_inbox_ack(self, request_ids: Sequence[str]) -> int:
        """See :meth:`RecordStore.drift_inbox_ack`."""
        if not request_ids:
            return 0
        with self._pool.connection() as conn, conn.cursor() as cur:
            return _pg_coord.inbox_ack(cur, request_ids)

    def save_drift_state(
        self,
        states: Mapping[str, str],
        *,
        drop: Sequence[str] = (),
        ack: Sequence[str] = (),
    ) -> None:
        """See :meth:`RecordStore.save_drift_state` (one PostgreSQL transaction)."""
        gone = [k for k in drop if k not in states]
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            _pg_coord.save_state(cur, states, gone)
            if ack:
                _pg_coord.inbox_ack(cur, ack)

    def load_drift_state(self) -> dict[str, str]:
        """See :meth:`RecordStore.load_drift_state`."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            return _pg_coord.load_state(cur)

    def drift_inbox_size(self) -> int:
        """See :meth:`RecordStore.drift_inbox_size`."""
        with self._pool.connection() as conn:
            row = conn.execute("SELECT count(*) FROM drift_inbox").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """See :meth:`RecordStore.close`: releases held locks, closes the pool."""
        for lock in list(self._locks):
            lock.release()
        self._pool.close()
