"""Coordination through PostgreSQL: named advisory locks, the drift inbox, drift state.

A named lock is a session-level ``pg_try_advisory_lock`` on a connection of its own
(never a pooled one, so no other work can release or inherit it). The server frees
the lock when that connection ends, so a holder killed with SIGKILL, or cut off the
network, loses it without running any code. Keys are 64-bit
``hashtextextended('tailcast-lock:' || name, 0)``; any process using the same
database and name contends for the same lock.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import psycopg
import pyarrow as pa
from psycopg import Cursor
from psycopg.rows import TupleRow

from core import RECORD_FIELDS
from feature_store._base import StoreLock
from feature_store._pg_arrow import RECORD_TYPES, copy_to_arrow, select_exprs

_KEY = "hashtextextended('tailcast-lock:' || %s, 0)"


class PgStoreLock(StoreLock):
    """A held advisory lock; see the module docstring.

    Args:
        name: The lock's name.
        conn: The autocommit connection holding it (owned: closed on release).
    """

    def __init__(self, name: str, conn: psycopg.Connection[TupleRow]) -> None:
        self.name = name
        self._conn = conn
        self._mutex = threading.Lock()
        self._released = False

    def held(self) -> bool:
        """Whether the lock is still held: not released and its connection answers."""
        with self._mutex:
            if self._released or self._conn.closed:
                return False
            try:
                row = self._conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid() AND granted AND objsubid = 1 AND "
                    f"((classid::bigint << 32) | objid::bigint) = {_KEY}",
                    [self.name],
                ).fetchone()
            except psycopg.Error:
                return False
            return bool(row and row[0])

    def release(self) -> None:
        """Unlock and close the lock's connection (idempotent; never raises)."""
        with self._mutex:
            if self._released:
                return
            self._released = True
            try:
                if not self._conn.closed:
                    self._conn.execute(f"SELECT pg_advisory_unlock({_KEY})", [self.name])
            except psycopg.Error:
                pass  # a dead connection: the server already released the lock
            finally:
                self._conn.close()


def try_lock(conninfo: str, name: str, connect_timeout_s: int = 10) -> PgStoreLock | None:
    """Take the named lock without waiting on a new connection; ``None`` if taken.

    Raises:
        psycopg.OperationalError: When the server cannot be reached.
    """
    conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=connect_timeout_s)
    try:
        row = conn.execute(f"SELECT pg_try_advisory_lock({_KEY})", [name]).fetchone()
    except BaseException:
        conn.close()
        raise
    if not (row and row[0]):
        conn.close()
        return None
    return PgStoreLock(name, conn)


_INBOX_TYPES = {name: RECORD_TYPES[name] for name in RECORD_FIELDS}


def inbox_take(cur: Cursor[TupleRow], limit: int) -> pa.Table:
    """The oldest ``limit`` inbox completions as full records, in enqueue order."""
    exprs = select_exprs(_INBOX_TYPES, "r")
    cols = ", ".join(
        "p.text AS prompt" if n == "prompt" else e for n, e in zip(_INBOX_TYPES, exprs, strict=True)
    )
    return copy_to_arrow(
        cur,
        f"SELECT {cols} FROM (SELECT request_id, seq FROM drift_inbox ORDER BY seq LIMIT %s) i "
        "JOIN records r ON r.request_id = i.request_id "
        "LEFT JOIN prompts p ON p.sha256 = r.prompt_sha256 ORDER BY i.seq",
        [int(limit)],
        _INBOX_TYPES,
    )


def inbox_ack(cur: Cursor[TupleRow], request_ids: Sequence[str]) -> int:
    """Remove ``request_ids`` from the inbox; how many were there."""
    cur.execute(
        "DELETE FROM drift_inbox i USING unnest(%s::text[]) AS a(id) WHERE i.request_id = a.id",
        [list(request_ids)],
    )
    return cur.rowcount


def save_state(cur: Cursor[TupleRow], states: Mapping[str, str], drop: Sequence[str]) -> None:
    """Delete ``drop`` and upsert ``states`` in ``drift_state`` (in the caller's transaction)."""
    if drop:
        cur.execute("DELETE FROM drift_state WHERE key = ANY(%s::text[])", [list(drop)])
    if states:
        cur.execute(
            "INSERT INTO drift_state (key, state, updated_at) "
            "SELECT k, v, now() FROM unnest(%s::text[], %s::text[]) AS s(k, v) "
            "ON CONFLICT (key) DO UPDATE SET state = excluded.state, "
            "updated_at = excluded.updated_at",
            [list(states), list(states.values())],
        )


def load_state(cur: Cursor[TupleRow]) -> dict[str, str]:
    """Every row of ``drift_state``: key -> JSON text."""
    cur.execute('SELECT key, state FROM drift_state ORDER BY key COLLATE "C"')
    return {str(k): str(v) for k, v in cur.fetchall()}
