"""An in-process cron scheduler for one-machine use (``tailcast pipeline schedule``).

:class:`CronScheduler` runs a set of named jobs at the times of one cron expression
(evaluated in UTC by ``croniter``). Time is injected (``clock`` and ``sleep``), so the
loop is tested without waiting. A job that raises is logged and recorded; the
scheduler keeps going. Runs that were missed while a slow job ran are not replayed:
after each round the next run is the first cron time after *now*. Clusters use a
Kubernetes CronJob running ``tailcast pipeline retrain`` instead (``docs/drift.md``).

Example:
    >>> from datetime import datetime, UTC
    >>> s = CronScheduler("0 */6 * * *", {}, clock=lambda: datetime(2026, 1, 1, 5, tzinfo=UTC))
    >>> [t.hour for t in s.next_runs(3)]
    [6, 12, 18]
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter  # type: ignore[import-untyped]

log = logging.getLogger(__name__)


def now_utc() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class JobRun:
    """One run of one job.

    Attributes:
        name: The job's name (a served model, for retraining).
        scheduled: The cron time it ran for.
        started: When it started.
        seconds: How long it took.
        error: The exception's text if it failed, else None.
        result: What the job returned (None if it failed).
    """

    name: str
    scheduled: datetime
    started: datetime
    seconds: float
    error: str | None
    result: object = None


class CronScheduler:
    """Run ``jobs`` (name -> callable) one after another at each time of ``cron``.

    Args:
        cron: A five-field cron expression (UTC).
        jobs: Named jobs, run in order at every scheduled time.
        clock: Returns the current UTC time (injectable for tests).
        sleep: Sleeps for the given seconds (injectable for tests).
        on_run: Called after every job run (progress, logging).

    Raises:
        ValueError: An invalid cron expression.
    """

    def __init__(
        self,
        cron: str,
        jobs: Mapping[str, Callable[[], object]],
        *,
        clock: Callable[[], datetime] = now_utc,
        sleep: Callable[[float], None] = time.sleep,
        on_run: Callable[[JobRun], None] | None = None,
    ) -> None:
        if not croniter.is_valid(cron):
            raise ValueError(f"invalid cron expression {cron!r} (five fields, e.g. '0 3 * * *')")
        self.cron = cron
        self.jobs = dict(jobs)
        self.clock, self.sleep, self.on_run = clock, sleep, on_run
        self.history: list[JobRun] = []

    def next_runs(self, n: int = 1, after: datetime | None = None) -> list[datetime]:
        """The next ``n`` scheduled times strictly after ``after`` (default: now)."""
        it = croniter(self.cron, (after or self.clock()).astimezone(UTC))
        return [it.get_next(datetime).astimezone(UTC) for _ in range(n)]

    def run_round(self, scheduled: datetime) -> list[JobRun]:
        """Run every job once for the cron time ``scheduled``; failures are recorded."""
        runs = []
        for name, job in self.jobs.items():
            started = self.clock()
            t0 = time.perf_counter()
            try:
                result, error = job(), None
            except Exception as exc:  # one failing job must not stop the schedule
                log.exception("scheduled job %s failed", name)
                result, error = None, f"{type(exc).__name__}: {exc}"
            run = JobRun(name, scheduled, started, time.perf_counter() - t0, error, result)
            self.history.append(run)
            runs.append(run)
            if self.on_run is not None:
                self.on_run(run)
        return runs

    def run(self, rounds: int | None = None, stop: threading.Event | None = None) -> None:
        """Wait for each scheduled time and run the jobs, until ``rounds`` or ``stop``.

        Args:
            rounds: Rounds to run (None: forever).
            stop: Set it to end the loop (checked at least once a minute while waiting).
        """
        done = 0
        while rounds is None or done < rounds:
            due = self.next_runs(1)[0]
            while (wait := (due - self.clock()).total_seconds()) > 0:
                if stop is not None and stop.is_set():
                    return
                self.sleep(min(wait, 60.0))
            if stop is not None and stop.is_set():
                return
            self.run_round(due)
            done += 1
