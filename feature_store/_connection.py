"""The DuckDB store's connection: cursors for readers, one writer, reopened now and then.

DuckDB (2.0) keeps a few kilobytes of native memory per write transaction on a file
database (upstream duckdb/duckdb#15176 reports the growth) and returns it only when
the database closes: a service storing completions as they arrive grew by tens of MiB
in ten minutes, and a close and reopen gave it all back (measured: 7.5 KiB per
single-completion ingest; 55-65 ms to close and reopen a 20,000-record store).
:class:`StoreConnection` therefore closes and reopens the database once
``reopen_after`` write transactions have committed, at a moment when no cursor is open:
readers wait for the reopen (tens of milliseconds), and a reopen that would wait for
a long read (a training frame, say) longer than :data:`REOPEN_WAIT_S` is put off to a
later write. See ``docs/decisions/2026-12-07-duckdb-reopen.md``.

After a reopen the C heap's free pages go back to the operating system
(:func:`core.process.release_free_memory`): glibc keeps what DuckDB and the interpreter freed in its
arenas, so without it the process's resident memory kept rising although the memory in
use did not (measured: 30,000 records stored ten at a time raised RSS by 24 MiB, and
``malloc_trim`` returned all of it).

Example:
    >>> import duckdb
    >>> conn = StoreConnection(lambda: duckdb.connect(":memory:"), reopen_after=None)
    >>> with conn.write() as cur:
    ...     _ = cur.execute("CREATE TABLE t (x INT)")
    >>> with conn.read() as cur:
    ...     cur.execute("SELECT count(*) FROM t").fetchone()
    (0,)
    >>> conn.close()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import duckdb

from core import StoreError
from core.process import release_free_memory

_log = logging.getLogger(__name__)

#: Seconds a due reopen waits for open cursors to close before it is put off.
REOPEN_WAIT_S = 1.0


class StoreConnection:
    """One DuckDB connection shared by a store's threads; see the module docstring.

    Args:
        connect: Opens the database (called again on each reopen); raises
            :class:`core.StoreError` when it cannot.
        reopen_after: Committed write transactions between reopens; ``None`` never
            reopens (an in-memory database, whose data the close would drop, or a
            read-only one).
    """

    def __init__(
        self, connect: Callable[[], duckdb.DuckDBPyConnection], reopen_after: int | None
    ) -> None:
        if reopen_after is not None and reopen_after < 1:
            raise ValueError("reopen_after must be >= 1 or None")
        self._connect = connect
        self._reopen_after = reopen_after
        self._con: duckdb.DuckDBPyConnection | None = connect()
        self._writes = 0
        self._readers = 0
        self._reopening = False
        self._closed = False
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        #: Reopens done so far (for tests and diagnostics).
        self.reopens = 0

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor (time zone UTC) that sees committed data; closed on exit."""
        cur = self._open_cursor()
        try:
            yield cur
        finally:
            self._close_cursor(cur)

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor held by the only writer; counted as a write transaction on exit.

        The caller opens and ends its transaction (``BEGIN``/``COMMIT``) or runs
        single statements in autocommit; either way the exit counts one write.
        """
        with self._write_lock:
            cur = self._open_cursor()
            try:
                yield cur
            finally:
                self._close_cursor(cur)
            self._writes += 1
            if self._reopen_after is not None and self._writes >= self._reopen_after:
                self._reopen()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A :meth:`write` cursor inside ``BEGIN``/``COMMIT``; rolled back on error."""
        with self.write() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the database (flushes and checkpoints); later use raises StoreError."""
        with self._write_lock, self._cond:
            if self._con is not None:
                self._con.close()
            self._con = None
            self._closed = True

    def _open_cursor(self) -> duckdb.DuckDBPyConnection:
        with self._cond:
            while self._reopening:
                self._cond.wait()
            if self._closed:
                raise StoreError("the feature store is closed")
            if self._con is None:  # a reopen failed: try again (raises StoreError)
                self._con = self._connect()
            self._readers += 1
            con = self._con
        try:
            cur = con.cursor()
            cur.execute("SET TimeZone = 'UTC'")
        except BaseException:
            self._release()
            raise
        return cur

    def _close_cursor(self, cur: duckdb.DuckDBPyConnection) -> None:
        try:
            cur.close()
        finally:
            self._release()

    def _release(self) -> None:
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def _reopen(self) -> None:
        """Close and reopen the database (under the write lock) once no cursor is open."""
        if self._close_and_open():
            release_free_memory()  # readers may run again meanwhile; writers wait

    def _close_and_open(self) -> bool:
        """Whether the database was reopened (False: put off, or the reopen failed)."""
        with self._cond:
            self._reopening = True
            try:
                if not self._cond.wait_for(lambda: self._readers == 0, REOPEN_WAIT_S):
                    return False  # a long read is running: try again after the next write
                assert self._con is not None
                self._con.close()
                self._con = None
                self._con = self._connect()
                self._writes = 0
                self.reopens += 1
                return True
            except StoreError:
                _log.exception("reopening the feature store failed; the next use retries")
                return False
            finally:
                self._reopening = False
                self._cond.notify_all()
