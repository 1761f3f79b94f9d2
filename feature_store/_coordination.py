"""Coordination in the DuckDB store: in-process named locks and the drift inbox.

One process owns a DuckDB file (DuckDB locks it), so a named lock only has to exclude
the threads of that process: :class:`LocalLock`, from the process-wide
:class:`LockTable` of the file (:func:`lock_table`: two stores opened on one file in
one process share it). The drift inbox is a table filled by
:meth:`~feature_store.DuckDBStore.ingest_batches` in the ingest's own transaction (see
:func:`enqueue_stored`) and drained by the one drift judge, which keeps its state in
``drift_state`` (saved with each acknowledgement, in one transaction); see
``docs/decisions/2026-12-06-shared-store.md``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from core import RECORD_FIELDS
from feature_store._base import StoreLock
from feature_store._connection import StoreConnection

#: ``SELECT`` list of an inbox read: every record field (prompt from ``prompts``), in order.
_INBOX_COLUMNS = ", ".join("p.text AS prompt" if f == "prompt" else f"r.{f}" for f in RECORD_FIELDS)
_INBOX_TAKE = (
    f"SELECT {_INBOX_COLUMNS} FROM drift_inbox i JOIN records r USING (request_id) "
    "LEFT JOIN prompts p ON p.sha256 = r.prompt_sha256 ORDER BY i.seq LIMIT ?"
)
#: Whether anything waits: the judge polls an idle inbox about once a second, and the
#: join above scans ``records`` and ``prompts`` even when the inbox is empty (DuckDB
#: plans it from the inbox's table statistics, which keep its past size): measured on
#: a 40,000-record store, 6.0 ms of CPU per empty take, 0.9 ms for this check.
_INBOX_WAITING = "SELECT EXISTS (SELECT 1 FROM drift_inbox)"


class LocalLock(StoreLock):
    """A named lock of one process, handed out by :class:`LockTable`.

    Args:
        name: The lock's name.
        table: The table that handed it out (and takes it back on release).
    """

    def __init__(self, name: str, table: LockTable) -> None:
        self.name = name
        self._table = table

    def held(self) -> bool:
        """Whether this lock is still the holder of its name."""
        return self._table.holder(self.name) is self

    def release(self) -> None:
        """Give the name back (idempotent; a lock that lost its name releases nothing)."""
        self._table.drop(self.name, self)


class LockTable:
    """The named locks held in this process (thread-safe)."""

    def __init__(self) -> None:
        self._held: dict[str, LocalLock] = {}
        self._mutex = threading.Lock()

    def try_lock(self, name: str) -> LocalLock | None:
        """A new holder of ``name``, or ``None`` while another holds it."""
        with self._mutex:
            if name in self._held:
                return None
            lock = self._held[name] = LocalLock(name, self)
            return lock

    def holder(self, name: str) -> LocalLock | None:
        """The current holder of ``name``."""
        with self._mutex:
            return self._held.get(name)

    def drop(self, name: str, lock: LocalLock) -> None:
        """Free ``name`` if ``lock`` holds it."""
        with self._mutex:
            if self._held.get(name) is lock:
                del self._held[name]


_TABLES: dict[str, LockTable] = {}
_TABLES_MUTEX = threading.Lock()


def lock_table(path: str) -> LockTable:
    """The process-wide lock table of the DuckDB file ``path`` (``:memory:``: a new one)."""
    if path == ":memory:":
        return LockTable()
    key = str(Path(path).resolve())
    with _TABLES_MUTEX:
        return _TABLES.setdefault(key, LockTable())


def enqueue_stored(con: duckdb.DuckDBPyConnection) -> None:
    """Enqueue the records an ingest just stored that carry a latency, in input order.

    Runs inside the ingest's transaction, after the insert into ``records``: ``_staged``
    is the validated batch (``_idx`` its input order) and ``_stored`` the request ids
    inserted now, so duplicates and rejects never enter. The stored row of an id is its
    first valid occurrence in the batch, and so is the latency checked here. ``_stored``
    must hold no id the inbox holds (a plain insert: see :mod:`feature_store._keyed`).
    """
    con.execute(
        "INSERT INTO drift_inbox (request_id, enqueued_at) SELECT request_id, now() FROM ("
        "SELECT request_id, latency_s, _idx FROM _staged WHERE _reject_reason IS NULL "
        "QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY _idx) = 1) f "
        "WHERE latency_s IS NOT NULL AND request_id IN (SELECT request_id FROM _stored) "
        "ORDER BY _idx"
    )


class InboxTables:
    """The coordination methods of the DuckDB store (a mixin; needs ``_db``)."""

    _db: StoreConnection
    #: The columns of an inbox take, once one ran (an empty take is answered from it).
    _inbox_schema: pa.Schema | None = None
    _locks: LockTable
    _taken: list[LocalLock]

    def try_lock(self, name: str) -> StoreLock | None:
        """See :meth:`RecordStore.try_lock` (in-process: one process owns the file)."""
        lock = self._locks.try_lock(name)
        if lock is not None:
            self._taken = [held for held in self._taken if held.held()] + [lock]
        return lock

    def _release_locks(self) -> None:
        """Release every lock this store handed out (it closes: they stop being held)."""
        for lock in self._taken:
            lock.release()
        self._taken = []

    def drift_inbox_take(self, limit: int = 1000) -> pa.Table:
        """See :meth:`RecordStore.drift_inbox_take`."""
        with self._db.read() as cur:
            schema = self._inbox_schema
            if schema is not None and not cur.sql(_INBOX_WAITING).fetchall()[0][0]:
                return schema.empty_table()
            table = cur.sql(_INBOX_TAKE, params=[limit]).to_arrow_table()
        self._inbox_schema = table.schema
        return table

    def drift_inbox_ack(self, request_ids: Sequence[str]) -> int:
        """See :meth:`RecordStore.drift_inbox_ack`."""
        if not request_ids:
            return 0
        with self._db.write() as cur:
            return _ack(cur, request_ids)

    def save_drift_state(
        self,
        states: Mapping[str, str],
        *,
        drop: Sequence[str] = (),
        ack: Sequence[str] = (),
    ) -> None:
        """See :meth:`RecordStore.save_drift_state` (one transaction under the write lock)."""
        gone = [k for k in drop if k not in states]
        with self._db.transaction() as cur:
            _save_states(cur, states, gone)
            if ack:
                _ack(cur, ack)

    def load_drift_state(self) -> dict[str, str]:
        """See :meth:`RecordStore.load_drift_state`."""
        with self._db.read() as cur:
            rows = cur.execute("SELECT key, state FROM drift_state ORDER BY key").fetchall()
        return {str(k): str(v) for k, v in rows}

    def drift_inbox_size(self) -> int:
        """See :meth:`RecordStore.drift_inbox_size`."""
        with self._db.read() as cur:
            row = cur.execute("SELECT count(*) FROM drift_inbox").fetchone()
        return int(row[0]) if row else 0


def _ack(cur: duckdb.DuckDBPyConnection, request_ids: Sequence[str]) -> int:
    """Delete ``request_ids`` from the inbox; how many were there."""
    cur.register("_acked", pa.table({"request_id": pa.array(list(request_ids), pa.string())}))
    try:
        row: Any = cur.execute(
            "DELETE FROM drift_inbox WHERE request_id IN (SELECT request_id FROM _acked)"
        ).fetchone()
    finally:
        cur.unregister("_acked")
    return int(row[0]) if row else 0


def _save_states(
    cur: duckdb.DuckDBPyConnection, states: Mapping[str, str], drop: list[str]
) -> None:
    """Replace ``states`` and delete ``drop`` in ``drift_state`` (inside a transaction).

    A delete and a plain insert, not an upsert (see :mod:`feature_store._keyed`).
    """
    gone = [*drop, *states]
    if gone:
        cur.execute(f"DELETE FROM drift_state WHERE key IN ({', '.join('?' for _ in gone)})", gone)
    if states:
        cur.register(
            "_states",
            pa.table(
                {
                    "key": pa.array(list(states), pa.string()),
                    "state": pa.array(list(states.values()), pa.string()),
                }
            ),
        )
        try:
            cur.execute("INSERT INTO drift_state SELECT key, state, now() FROM _states")
        finally:
            cur.unregister("_states")
