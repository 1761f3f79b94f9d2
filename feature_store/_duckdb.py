"""The DuckDB feature store: one file, one writer, many concurrent readers.

Concurrency model: the process that opens the file read-write is its only writer
(DuckDB locks the file); inside that process every write runs under one lock, and
every read gets its own cursor, so readers run concurrently with each other and
see only committed data. Named locks (:meth:`DuckDBStore.try_lock`) are therefore
in-process, and every ingest fills the drift inbox in its own transaction. Another
process may open the same file ``read_only=True`` while no writer holds it. The
connection (:class:`~feature_store._connection.StoreConnection`) closes and reopens
the file every :data:`REOPEN_AFTER` write transactions, which hands back the native
memory DuckDB keeps per write transaction. Scaling beyond one writer goes through the
tailcast API (the service owns the store) or through exported Parquet snapshots; see
``docs/feature_store.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from core import IngestReport, StoreError
from feature_store import _frames
from feature_store._base import EndpointStats, PreviousCall, Progress, RecordStore, StoreStats
from feature_store._connection import StoreConnection
from feature_store._coordination import InboxTables, enqueue_stored, lock_table
from feature_store._drift import DriftTables
from feature_store._keyed import stored_keys
from feature_store._prefetch import prefetch
from feature_store._schema import (
    COORDINATION_DDL,
    DDL,
    DRIFT_DDL,
    SCHEMA_VERSION,
    STORED_FIELDS,
)
from feature_store._staging import finish, stage
from feature_store._stats import store_stats

_STORED = [s.name for s in STORED_FIELDS]


#: DuckDB settings of every store connection. The allocator hands freed memory back to
#: the OS past 16 MiB (DuckDB's default, 128 MiB, let a long-running service's resident
#: memory creep up by some 100 MiB under a stream of small ingests). A checkpoint once
#: the write-ahead log holds 1 MiB (default 16 MiB): a service's stream of small write
#: transactions (completions, judged-inbox deletes, drift state) keeps what it wrote
#: since the last checkpoint in memory, so its resident memory climbed by tens of MiB
#: between checkpoints and did not settle (docs/decisions/2026-12-07-duckdb-checkpoints.md).
_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "allocator_flush_threshold": "16MiB",
    "checkpoint_threshold": "1MiB",
}


#: Write transactions between two reopens of the database (see
#: :mod:`feature_store._connection`): a service's transactions (an ingest, an inbox
#: take, a drift-state save with its acknowledgement) keep 5-15 KiB each, so at most some
#: 5-7 MiB between reopens; a reopen costs tens of milliseconds (every 20-30 s at the
#: soak's 50 completions/s). At 2,000, resident memory swung by 25-30 MiB between
#: reopens (see ``docs/decisions/2026-12-07-duckdb-reopen.md``).
REOPEN_AFTER = 500


def _register_stored(
    con: duckdb.DuckDBPyConnection, table: str, column: str, expr: str, view: str
) -> None:
    """Register the keys ``table`` already holds among ``_staged``'s valid rows as ``view``.

    Args:
        con: The writer's connection holding ``_staged``.
        table: The keyed table; ``column`` is its primary key.
        column: The key column.
        expr: The key of a staged row (SQL over ``_staged``; rows where it is null skipped).
        view: The name to register the stored keys under (one column, ``k``).
    """
    keys = con.execute(
        f"SELECT DISTINCT {expr} FROM _staged WHERE _reject_reason IS NULL AND {expr} IS NOT NULL"
    ).fetchall()
    stored = stored_keys(con, table, column, [str(k) for (k,) in keys])
    con.register(view, pa.table({"k": pa.array(stored, pa.string())}))


class DuckDBStore(InboxTables, DriftTables, RecordStore):
    """A :class:`RecordStore` in one DuckDB file (or in memory with ``":memory:"``).

    Args:
        path: The database file; parent directories are created.
        read_only: Open without write access (for a second process).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        reopen_after: int | None = REOPEN_AFTER,
    ) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

        def connect() -> duckdb.DuckDBPyConnection:
            try:
                return duckdb.connect(self.path, read_only=read_only, config=_CONFIG)
            except duckdb.Error as exc:
                raise StoreError(f"cannot open feature store {self.path}: {exc}") from exc

        durable = self.path != ":memory:" and not read_only
        self._db = StoreConnection(connect, reopen_after if durable else None)
        self._locks = lock_table(self.path)
        self._taken = []
        if not read_only:
            with self._db.write() as con:
                for statement in (*DDL, *DRIFT_DDL, *COORDINATION_DDL):
                    con.execute(statement)
                con.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE "
                    "SET value = CAST(greatest(CAST(meta.value AS BIGINT), "
                    "CAST(excluded.value AS BIGINT)) AS VARCHAR)",
                    [str(SCHEMA_VERSION)],
                )

    # --- writes ------------------------------------------------------------------
    def ingest_batches(
        self,
        batches: Iterable[pa.Table],
        source: str | None = None,
        progress: Progress | None = None,
        *,
        judge: bool = True,
    ) -> IngestReport:
        """See :meth:`RecordStore.ingest_batches`."""
        started = datetime.now(UTC)
        report = IngestReport(accepted=0, duplicates=0)
        with self._db.transaction() as con:
            for batch in prefetch(batches):
                report = report + self._ingest_one(
                    con, batch, source, offset=report.total, judge=judge
                )
                if progress is not None:
                    progress(batch.num_rows)
            con.execute(
                "INSERT INTO ingest_log (source, started_at, finished_at, accepted, "
                "duplicates, rejected) VALUES (?, ?, now(), ?, ?, ?)",
                [source, started, report.accepted, report.duplicates, len(report.rejected)],
            )
        return report

    def _ingest_one(
        self,
        con: duckdb.DuckDBPyConnection,
        batch: pa.Table,
        source: str | None,
        offset: int,
        judge: bool,
    ) -> IngestReport:
        rejections = stage(con, batch, offset)
        _register_stored(con, "prompts", "sha256", "sha256(prompt)", "_old_prompts")
        _register_stored(con, "records", "request_id", "request_id", "_old_records")
        try:
            con.execute(
                "INSERT INTO prompts SELECT DISTINCT sha256(prompt), prompt FROM _staged "
                "WHERE _reject_reason IS NULL AND prompt IS NOT NULL "
                "AND sha256(prompt) NOT IN (SELECT k FROM _old_prompts)"
            )
            cols = ", ".join(_STORED)
            stored = con.execute(
                f"INSERT INTO records ({cols}, prompt_sha256, completed_at, source, ingested_at) "
                f"SELECT {cols}, CASE WHEN prompt IS NULL THEN NULL ELSE sha256(prompt) END, "
                "submitted_at + to_microseconds(CAST(round(latency_s * 1e6) AS BIGINT)), ?, now() "
                "FROM _staged WHERE _reject_reason IS NULL "
                "AND request_id NOT IN (SELECT k FROM _old_records) "
                "QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY _idx) = 1 "
                "RETURNING request_id",
                [source],
            ).fetchall()
        finally:
            con.unregister("_old_prompts")
            con.unregister("_old_records")
        ids = pa.table({"request_id": pa.array([r[0] for r in stored], pa.string())})
        if judge:  # ids new to records are new to the inbox too: a plain insert
            con.register("_stored", ids)
            try:
                enqueue_stored(con)  # the drift judge's inbox, in this same transaction
            finally:
                con.unregister("_stored")
        return finish(con, batch, rejections, ids, offset)

    def put_embeddings(
        self, encoder_id: str, prompt_sha256: Sequence[str], vectors: npt.NDArray[np.float32]
    ) -> int:
        """See :meth:`RecordStore.put_embeddings`."""
        if len(prompt_sha256) != len(vectors):
            raise ValueError(f"{len(prompt_sha256)} keys but {len(vectors)} vectors")
        table = pa.table(
            {
                "prompt_sha256": pa.array(prompt_sha256, pa.string()),
                "vector": pa.array(list(np.asarray(vectors, np.float32)), pa.list_(pa.float32())),
            }
        )
        with self._db.write() as con:
            con.register("_emb", table)
            row = con.execute(
                "INSERT INTO embeddings SELECT prompt_sha256, ?, vector, now() FROM _emb "
                "ON CONFLICT DO NOTHING",
                [encoder_id],
            ).fetchone()
        return int(row[0]) if row else 0

    # --- reads -------------------------------------------------------------------
    def get_embeddings(
        self, encoder_id: str, prompt_sha256: Sequence[str]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        """See :meth:`RecordStore.get_embeddings`."""
        keys = pa.table(
            {
                "k": pa.array(prompt_sha256, pa.string()),
                "i": pa.array(range(len(prompt_sha256)), pa.int64()),
            }
        )
        with self._db.read() as cur:
            cur.register("_keys", keys)
            found = cur.sql(
                "SELECT i, vector FROM _keys JOIN embeddings e "
                "ON e.prompt_sha256 = k AND e.encoder_id = ? ORDER BY i",
                params=[encoder_id],
            ).to_arrow_table()
        mask = np.zeros(len(prompt_sha256), dtype=np.bool_)
        if found.num_rows == 0:
            return mask, np.zeros((len(prompt_sha256), 0), dtype=np.float32)
        idx = found.column("i").to_numpy()
        vecs = np.stack(found.column("vector").to_pylist()).astype(np.float32)
        out = np.zeros((len(prompt_sha256), vecs.shape[1]), dtype=np.float32)
        out[idx] = vecs
        mask[idx] = True
        return mask, out

    def prompts_missing_embeddings(self, encoder_id: str) -> Iterator[tuple[str, str]]:
        """See :meth:`RecordStore.prompts_missing_embeddings`."""
        with self._db.read() as cur:
            rows = cur.execute(
                "SELECT sha256, text FROM prompts p WHERE NOT EXISTS (SELECT 1 FROM embeddings e "
                "WHERE e.prompt_sha256 = p.sha256 AND e.encoder_id = ?) ORDER BY sha256",
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
        """See :meth:`RecordStore.training_frame`."""
        sql, params = _frames.training_frame_sql(
            served_model,
            start,
            end,
            columns,
            as_of=as_of or end,
            require=require,
            window=endpoint_window,
        )
        with self._db.read() as cur:
            return cur.sql(sql, params=params).to_arrow_table()

    def endpoint_stats(
        self, served_model: str, device: str, at: datetime, window: int = 50
    ) -> EndpointStats:
        """See :meth:`RecordStore.endpoint_stats`."""
        sql, params = _frames.endpoint_stats_sql(served_model, device, at, window)
        with self._db.read() as cur:
            n, tps, lat = cur.execute(sql, params).fetchone() or (0, None, None)
        return EndpointStats(completions=int(n), median_tokens_per_s=tps, median_latency_s=lat)

    def previous_calls(self, request_ids: Sequence[str]) -> dict[str, PreviousCall]:
        """See :meth:`RecordStore.previous_calls`."""
        if not request_ids:
            return {}
        sql = _frames.previous_calls_sql("IN (SELECT unnest(?::VARCHAR[]))")
        with self._db.read() as cur:
            rows = cur.execute(sql, [list(request_ids), list(request_ids)]).fetchall()
        return {rid: PreviousCall(output_tokens=out, latency_s=lat) for rid, out, lat in rows}

    def stats(self) -> StoreStats:
        """See :meth:`RecordStore.stats`."""
        with self._db.read() as cur:
            return store_stats(cur, self.path)

    def close(self) -> None:
        """See :meth:`RecordStore.close`; the store's named locks stop being held."""
        self._release_locks()
        self._db.close()
