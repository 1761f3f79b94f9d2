"""Drift reports built in a child process, so evidently never loads in the service.

evidently is slow to import (~8 s) and large (a few hundred MiB resident, never given
back); a service that built reports in its own process would carry that from its
first drift event on, and each report's Python work would compete with the forecast
path for the interpreter. :class:`ReportWorker` keeps one spawned child (started at the
first report, reused after) that runs :func:`drift.reports.write_report`; the service
sends it the two windows and gets the report's metadata back. A child that dies is
replaced at the next report.

The two windows are still built in the service (its store holds the reference), on
one :class:`ReportThread`; after each report it hands the memory they freed back to
the operating system (:func:`release_memory`), so a report does not leave the
service's resident memory a step higher.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import ParamSpec, TypeVar

import pandas as pd

from core.drift import DriftReportInfo
from core.process import init_background_child, release_free_memory

T = TypeVar("T")
P = ParamSpec("P")

#: Added to the worker's niceness: reports yield the CPU to the forecast path (the
#: same policy as the drift retraining child, ``pipelines._retrain_child.NICENESS``).
NICENESS = 10


class ReportWorker:
    """Writes drift reports in one child process of its own (thread-safe)."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=context,
                    initializer=init_background_child,
                    initargs=(NICENESS,),
                )
            return self._pool

    def write(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        directory: Path,
        served_model: str,
        *,
        suffix: str | None,
        tracking_uri: str | None,
    ) -> DriftReportInfo:
        """:func:`drift.reports.write_report` in the child; its metadata.

        Raises:
            drift.reports.NotEnoughDataError: A window is too small (nothing written).
            BrokenProcessPool: The child died (the next call starts a new one).
        """
        from drift.reports import write_report

        pool = self._executor()
        future = pool.submit(
            write_report,
            reference,
            current,
            directory,
            served_model,
            suffix=suffix,
            tracking_uri=tracking_uri,
        )
        try:
            return future.result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            raise

    def close(self) -> None:
        """Stop the child (a report being written is abandoned)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def release_memory() -> None:
    """Hand freed memory back to the OS: Arrow's pool, then glibc's heap (Linux).

    A report's frames (thousands of rows with prompts, their forecasts) are freed when
    it is written, but allocators keep freed pages for reuse; ``malloc_trim`` returns
    whole free pages of every arena. Elsewhere (no glibc) only Arrow's pool is asked.
    """
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    release_free_memory()


class ReportThread(ThreadPoolExecutor):
    """The one thread drift reports are prepared on; :func:`release_memory` after each."""

    def __init__(self) -> None:
        super().__init__(1, thread_name_prefix="tailcast-drift-report")

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run ``fn(*args, **kwargs)``, then release the memory it freed."""

        def run() -> T:
            try:
                return fn(*args, **kwargs)
            finally:
                release_memory()

        return super().submit(run)
