"""Coordination between processes sharing one PostgreSQL store: locks, claims, ingest."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from feature_store import PostgresStore

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 4, 11, 7, 0, tzinfo=UTC)


@pytest.fixture
def two(pg_url: str) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    """Two store instances on one database (as two replicas would hold)."""
    a, b = PostgresStore(pg_url, max_size=4), PostgresStore(pg_url, max_size=4)
    yield a, b
    a.close()
    b.close()


def _in_threads(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` for i < n in threads released together; their results."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    return results


def test_a_lock_is_exclusive_across_store_instances(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two
    held = a.try_lock("drift-judge")
    assert held is not None
    assert b.try_lock("drift-judge") is None
    other = b.try_lock("retrain:deepseek-chat")
    assert other is not None
    held.release()
    taken = b.try_lock("drift-judge")
    assert taken is not None
    assert a.try_lock("drift-judge") is None
    taken.release()
    other.release()


def test_closing_the_holder_releases_its_locks(pg_url: str) -> None:
    with PostgresStore(pg_url) as other:
        holder = PostgresStore(pg_url)
        lock = holder.try_lock("drift-judge")
        assert lock is not None
        assert other.try_lock("drift-judge") is None
        holder.close()
        assert not lock.held()
        assert other.try_lock("drift-judge") is not None


def test_a_lock_whose_connection_dies_is_free_and_no_longer_held(
    two: tuple[PostgresStore, PostgresStore], pg_url: str
) -> None:
    a, b = two
    lock = a.try_lock("drift-judge")
    assert lock is not None
    with psycopg.connect(pg_url, autocommit=True) as admin:
        (pid,) = admin.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
        admin.execute("SELECT pg_terminate_backend(%s)", pid)
    assert not lock.held()
    assert b.try_lock("drift-judge") is not None
    lock.release()  # still fine on a dead connection


def test_a_killed_holder_process_frees_its_lock(pg_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAILCAST_")}
    code = (
        "import sys, time; from feature_store import PostgresStore; "
        "s = PostgresStore(sys.argv[1]); lock = s.try_lock('drift-judge'); "
        "print('held' if lock else 'busy', flush=True); time.sleep(300)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, pg_url], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        with PostgresStore(pg_url) as store:
            assert store.try_lock("drift-judge") is None
            proc.kill()  # SIGKILL: no cleanup runs in the holder
            proc.wait(timeout=30)
            deadline = time.monotonic() + 10
            lock = store.try_lock("drift-judge")
            while lock is None and time.monotonic() < deadline:
                time.sleep(0.05)
                lock = store.try_lock("drift-judge")
            assert lock is not None
            assert lock.held()
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_concurrent_claimers_never_share_an_alert(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two
    ids = {a.enqueue_alert(f"ev{i}", "http://127.0.0.1:9/hook", "{}", T0) for i in range(40)}
    stores = [a, b, a, b]

    def claim_all(i: int) -> list[str]:
        got: list[str] = []
        while batch := stores[i].claim_alerts(T0, f"claimer-{i}", lease_s=60, limit=3):
            got += [m.alert_id for m in batch]
        return got

    claimed = _in_threads(4, claim_all)
    everything = [aid for got in claimed for aid in got]
    assert sorted(everything) == sorted(ids)  # each alert exactly once
    assert b.claim_alerts(T0 + timedelta(seconds=59), "late") == []
    expired = b.claim_alerts(T0 + timedelta(seconds=60), "late", limit=100)
    assert {m.alert_id for m in expired} == ids


def _rows(ids: range) -> list[dict[str, Any]]:
    return [
        {
            "request_id": f"r{i}",
            "served_model": "m",
            "device": "h100",
            "submitted_at": (T0 + timedelta(seconds=i)).isoformat(),
            "latency_s": 1.0,
            "prompt": f"prompt {i % 7}",
        }
        for i in ids
    ]


def test_concurrent_overlapping_ingests_store_each_record_once(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two
    batches = [_rows(range(0, 3000)), _rows(range(1000, 4000))[::-1], _rows(range(2000, 2500))]
    stores = [a, b, a]
    reports = _in_threads(3, lambda i: stores[i].ingest_rows(batches[i]))
    assert sum(r.accepted for r in reports) == 4000
    assert sum(r.accepted + r.duplicates for r in reports) == 6500
    assert all(r.rejected == () for r in reports)
    assert a.stats().records == 4000
    assert a.stats().prompts == 7
    assert b.drift_inbox_size() == 4000
    assert b.stats().ingests == 3
