"""The in-process cron scheduler with an injected clock (no waiting)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.schedule import CronScheduler, JobRun

TAILCAST = Path(sys.executable).parent / "tailcast"


class FakeClock:
    """A clock that only moves when the scheduler sleeps (or a job takes time)."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def test_next_runs_follow_the_cron_expression_in_utc() -> None:
    clock = FakeClock(datetime(2026, 4, 11, 5, 59, 30, tzinfo=UTC))
    s = CronScheduler("0 */6 * * *", {}, clock=clock)
    assert s.next_runs(3) == [
        datetime(2026, 4, 11, 6, tzinfo=UTC),
        datetime(2026, 4, 11, 12, tzinfo=UTC),
        datetime(2026, 4, 11, 18, tzinfo=UTC),
    ]


def test_invalid_cron_is_refused_with_the_expression() -> None:
    with pytest.raises(ValueError, match="'61 \\* \\* \\* \\*'"):
        CronScheduler("61 * * * *", {})


def test_runs_each_job_at_each_time_and_survives_a_failing_job() -> None:
    clock = FakeClock(datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC))
    calls: list[tuple[str, datetime]] = []

    def good() -> str:
        calls.append(("good", clock.now))
        clock.now += timedelta(seconds=20)  # the job takes 20 s
        return "done"

    def bad() -> str:
        calls.append(("bad", clock.now))
        raise RuntimeError("store locked")

    seen: list[JobRun] = []
    s = CronScheduler(
        "*/15 * * * *",
        {"bad": bad, "good": good},
        clock=clock,
        sleep=clock.sleep,
        on_run=seen.append,
    )
    s.run(rounds=3)
    minute = [t.minute for name, t in calls if name == "good"]
    assert minute == [15, 30, 45]
    assert [name for name, _ in calls] == ["bad", "good"] * 3
    assert [r.error for r in seen] == ["RuntimeError: store locked", None] * 3
    assert [r.result for r in seen if r.error is None] == ["done"] * 3
    assert all(r.scheduled.second == 0 for r in seen)
    # It slept in steps of at most a minute (so a stop event is noticed).
    assert max(clock.slept) <= 60.0
    assert s.history == seen


def test_a_run_missed_while_a_job_ran_is_skipped_not_replayed() -> None:
    clock = FakeClock(datetime(2026, 1, 1, 0, 0, 59, tzinfo=UTC))
    started: list[datetime] = []

    def slow() -> None:
        started.append(clock.now)
        clock.now += timedelta(minutes=2, seconds=30)  # overruns the next two minutes

    CronScheduler("* * * * *", {"slow": slow}, clock=clock, sleep=clock.sleep).run(rounds=2)
    assert [t.strftime("%H:%M:%S") for t in started] == ["00:01:00", "00:04:00"]


def test_stop_event_ends_the_wait() -> None:
    import threading

    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    stop = threading.Event()
    ran: list[int] = []

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.slept) == 3:
            stop.set()

    s = CronScheduler("0 0 * * *", {"job": lambda: ran.append(1)}, clock=clock, sleep=sleep)
    s.run(stop=stop)
    assert ran == []
    assert len(clock.slept) == 3


def test_cli_schedule_refuses_a_bad_cron_and_names_it(tmp_path: Path) -> None:
    env = {**os.environ, "TAILCAST_HOME": str(tmp_path)}
    out = subprocess.run(
        [str(TAILCAST), "pipeline", "schedule", "--cron", "every day"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert "invalid cron expression 'every day'" in out.stderr


def test_cli_retrain_of_an_unknown_served_model_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "TAILCAST_HOME": str(tmp_path)}
    out = subprocess.run(
        [str(TAILCAST), "pipeline", "retrain", "--served-model", "nope", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert "no records with latency_s for served model 'nope'" in out.stderr
    assert out.stdout == ""
