"""The drift judge loop: whichever replica holds ``drift-judge`` drains the drift inbox.

Every ingest into the store (``POST /v1/completions`` of any replica, a CLI ingest the
service brokers, a ``tailcast ingest`` into PostgreSQL) enqueues its newly stored
completions that carry a latency in the store's drift inbox, in the same transaction.
Every replica runs a :class:`JudgeLoop` thread that tries ``store.try_lock("drift-judge")``
every ``retry_s`` seconds; the one that holds it takes the oldest completions
(``drift_inbox_take``), judges them, and acknowledges them (``drift_inbox_ack``), woken
at once by a local ingest (:meth:`JudgeLoop.wake`) and otherwise every ``poll_s``
seconds. A woken judge starts its next pass no sooner than ``gather_s`` after the
start of its latest pass that judged anything (an idle judge answers a wake at once):
completions posted one per call (a gateway reporting each as it finishes) are judged,
and their drift state saved, a pass at a time rather than a store transaction each
(:meth:`JudgeLoop.flush` does not wait for it). When its lock stops being held (its
PostgreSQL session died, the store closed) it stops judging and goes back to trying,
so drift is judged by one replica at a time over every replica's completions.

Acknowledgment is after judging: a judge that dies mid-batch leaves the batch for its
successor (at least once). A batch whose judging raises is acknowledged anyway and
counted in :attr:`JudgeLoop.failures` (a poison batch must not stop the judge). The
service acknowledges through its ``commit`` (the drift state the batch led to is saved
in the same store transaction, :mod:`serving._drift_persist`) and restores that state
in ``on_acquire``; a replica that cannot restore it lets the lock go and tries later,
and ``on_release`` runs whenever it lets the lock go (the offsets it learned are then
read from the store again, :mod:`serving._calibration`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from feature_store import RecordStore, StoreLock

logger = logging.getLogger(__name__)

#: Seconds from the start of a pass that judged completions to the next pass: at 50
#: completions/s posted one per call, a pass (and a drift state write of some tens of
#: KB) per 0.5 s instead of one per completion.
GATHER_S = 0.5
#: The name of the store lock whose holder judges drift.
JUDGE_LOCK = "drift-judge"
#: Seconds between attempts to become the judge while another replica is (module-level
#: so tests can shorten it).
RETRY_S = 3.0

Judge = Callable[[list[dict[str, Any]]], object]
Commit = Callable[[list[str]], object]


class JudgeLoop:
    """The thread that judges the store's drift inbox while it holds the judge lock.

    Args:
        store: The shared store (inbox and locks).
        judge: Called with a batch of inbox rows (dicts of every record field, oldest
            first); whatever it returns is ignored, an exception counts as a failure.
        on_acquire: Called each time this replica becomes the judge, before judging
            (the service restores the stored drift state); when it raises, the lock
            is released and taken again after ``retry_s``.
        on_release: Called each time this replica lets the lock go after
            ``on_acquire`` ran (an exception is logged).
        commit: Called with the request ids of a judged batch to acknowledge it
            (default: ``store.drift_inbox_ack``); when it raises, the batch stays in
            the inbox and is taken again.
        retry_s: Seconds between lock attempts (default :data:`RETRY_S`).
        poll_s: Seconds between inbox checks of an idle judge (ingests of this process
            wake it at once; other processes' ingests are seen within ``poll_s``).
        batch: Completions taken per pass.
        gather_s: Least seconds from the start of a pass that judged completions to the
            next pass's (default :data:`GATHER_S`; a full batch is followed at once).
    """

    def __init__(
        self,
        store: RecordStore,
        judge: Judge,
        *,
        on_acquire: Callable[[], None] | None = None,
        on_release: Callable[[], None] | None = None,
        commit: Commit | None = None,
        retry_s: float | None = None,
        poll_s: float = 1.0,
        batch: int = 1000,
        gather_s: float | None = None,
    ) -> None:
        self.store = store
        self._judge = judge
        self._on_acquire = on_acquire
        self._on_release = on_release
        self._commit: Commit = commit or store.drift_inbox_ack
        self.retry_s = RETRY_S if retry_s is None else retry_s
        self.poll_s = poll_s
        self.batch = batch
        self.gather_s = GATHER_S if gather_s is None else gather_s
        self._last_busy = 0.0  # time.monotonic() at the start of the latest pass with rows
        self._hurry = threading.Event()  # flush or stop: skip the gathering wait
        self.failures = 0
        self.lock: StoreLock | None = None  # the judge lock while this replica holds it
        self._judging = False
        self._cond = threading.Condition()
        self._passes = 0  # drain passes begun
        self._clean = 0  # the latest pass that found the inbox drained
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_judge(self) -> bool:
        """Whether this replica judges drift now (it held the lock at its last check)."""
        return self._judging

    # --- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        """Start the daemon thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tailcast-drift-judge", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Drain soon (a local ingest stored completions): within ``gather_s``; never blocks."""
        self._wake.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the current pass, release the lock and stop the thread."""
        self._stop.set()
        self._hurry.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until everything ingested before the call has been judged.

        As the judge: until a pass begun after the call left the inbox empty. Otherwise:
        until the inbox is empty (another replica judges it), or this replica becomes
        the judge and drains it.

        Raises:
            TimeoutError: Not drained within ``timeout_s`` seconds.
        """
        deadline = time.monotonic() + timeout_s
        target: int | None = None
        while True:
            with self._cond:
                if self._judging:
                    if target is None:
                        target = self._passes + 1
                        self._hurry.set()
                        self._wake.set()
                    if self._clean >= target:
                        return
                    self._cond.wait(0.05)
            if not self._judging and self.store.drift_inbox_size() == 0:
                return
            if not self._judging:
                time.sleep(0.05)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the drift inbox was not drained within {timeout_s} s")

    # --- the thread ----------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            lock = self._acquire()
            if lock is None:
                self._stop.wait(self.retry_s)
                continue
            taken_over = False
            try:
                self.lock = lock
                taken_over = self._take_over()
                if taken_over:
                    self._hold(lock)
            finally:
                self._judging = False
                self.lock = None
                with contextlib.suppress(Exception):
                    lock.release()
                self._released()
            if not taken_over:
                self._stop.wait(self.retry_s)

    def _acquire(self) -> StoreLock | None:
        try:
            return self.store.try_lock(JUDGE_LOCK)
        except Exception:  # the store is unreachable: try again later
            logger.exception("cannot try the %s lock", JUDGE_LOCK)
            return None

    def _take_over(self) -> bool:
        """Run ``on_acquire``; whether this replica may judge now."""
        logger.info("this replica judges drift (holds %r)", JUDGE_LOCK)
        if self._on_acquire is None:
            return True
        try:
            self._on_acquire()
        except Exception:  # e.g. the store is unreachable: no judging without the state
            self.failures += 1
            logger.exception("cannot take over as the drift judge; trying again later")
            return False
        return True

    def _released(self) -> None:
        if self._on_release is None:
            return
        try:
            self._on_release()
        except Exception:
            logger.exception("the drift judge's release hook failed")

    def _hold(self, lock: StoreLock) -> None:
        """Judge while ``lock`` is held and the loop runs."""
        self._judging = True
        while not self._stop.is_set():
            if not lock.held():
                logger.warning("lost the %r lock: this replica stops judging drift", JUDGE_LOCK)
                return
            if not self._pass():
                self._wake.wait(self.poll_s)
                self._wake.clear()
                self._gather()

    def _gather(self) -> None:
        """Wait until ``gather_s`` after the latest busy pass began (or a flush or stop)."""
        remaining = self._last_busy + self.gather_s - time.monotonic()
        if remaining > 0:
            self._hurry.wait(remaining)

    def _pass(self) -> bool:
        """Take, judge and acknowledge one batch; whether more is waiting right now."""
        self._hurry.clear()
        started = time.monotonic()
        with self._cond:
            self._passes += 1
            number = self._passes
        try:
            rows = self.store.drift_inbox_take(self.batch).to_pylist()
        except Exception:
            self.failures += 1
            logger.exception("cannot read the drift inbox")
            return False
        if rows:
            self._last_busy = started
            self._judge_batch(rows)
            try:
                self._commit([r["request_id"] for r in rows])
            except Exception:  # judged again by the next pass (at least once)
                self.failures += 1
                logger.exception("cannot acknowledge %d judged completions", len(rows))
                return False
        if len(rows) < self.batch:
            with self._cond:
                self._clean = number
                self._cond.notify_all()
            return False
        return True

    def _judge_batch(self, rows: list[dict[str, Any]]) -> None:
        try:
            self._judge(rows)
        except Exception:  # acknowledged anyway: a poison batch must not stop the judge
            self.failures += 1
            logger.exception("drift judging failed for %d completions", len(rows))
