"""Coordination through the store: named locks, the drift inbox and state, outbox claims.

Every test but the last takes ``open_store``, a factory of stores on one storage (closed
after the test), and runs on each durable backend: a DuckDB file and PostgreSQL
(``durable_store_opener`` in ``conftest.py``; marked ``postgres``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from core import RECORD_FIELDS, CompletionRecord
from core.drift import DeliveryAttempt
from feature_store import DuckDBStore, RecordStore
from feature_store._schema import COORDINATION_DDL, DDL, DRIFT_DDL, SCHEMA_VERSION
from feature_store.importers._base import LINE

T0 = datetime(2026, 4, 11, 7, 0, tzinfo=UTC)
Opener = Callable[[], RecordStore]


@pytest.fixture
def open_store(durable_store_opener: Opener) -> Opener:
    """Opens stores of one backend (DuckDB file, PostgreSQL) on one storage (conftest.py)."""
    return durable_store_opener


def _row(request_id: str, **fields: Any) -> dict[str, Any]:
    row = {
        "request_id": request_id,
        "served_model": "chat",
        "device": "h100",
        "submitted_at": T0,
        "input_tokens": 100,
        "output_tokens": 20,
        "latency_s": 1.5,
    }
    return {**row, **fields}


def _ids(table: pa.Table) -> list[str]:
    return [str(v) for v in table.column("request_id").to_pylist()]


# --- the drift inbox ------------------------------------------------------------------
def test_inbox_holds_each_newly_stored_completion_with_a_latency(open_store: Opener) -> None:
    store = open_store()
    report = store.ingest_rows(
        [
            _row("a", prompt="hello"),
            _row("b", latency_s=None),  # no outcome yet: nothing to judge
            _row("c", latency_s=-1.0),  # rejected
            _row("d"),
            _row("d", latency_s=9.0),  # repeated in the batch: the first is stored
        ]
    )
    assert (report.accepted, report.duplicates, len(report.rejected)) == (3, 1, 1)
    assert store.drift_inbox_size() == 2
    again = store.ingest_rows([_row("a"), _row("e", input_tokens=7)])  # a: a client's retry
    assert (again.accepted, again.duplicates) == (1, 1)
    taken = store.drift_inbox_take()
    assert _ids(taken) == ["a", "d", "e"]  # enqueue order
    assert taken.column_names == list(RECORD_FIELDS)
    rows = taken.to_pylist()
    assert rows[0]["prompt"] == "hello"
    assert rows[1]["latency_s"] == 1.5  # the stored (first) occurrence of d
    assert rows[2]["input_tokens"] == 7
    assert CompletionRecord.model_validate(rows[0]).submitted_at == T0


def test_take_does_not_remove_and_ack_counts_what_it_removed(open_store: Opener) -> None:
    store = open_store()
    store.ingest_rows([_row(f"r{i}") for i in range(5)])
    first = store.drift_inbox_take(limit=2)
    assert _ids(first) == ["r0", "r1"]
    assert _ids(store.drift_inbox_take(limit=2)) == ["r0", "r1"]  # not acknowledged yet
    assert store.drift_inbox_ack(_ids(first)) == 2
    assert store.drift_inbox_ack(["r0", "nope"]) == 0
    assert store.drift_inbox_ack([]) == 0
    assert store.drift_inbox_size() == 3
    assert _ids(store.drift_inbox_take()) == ["r2", "r3", "r4"]


def test_an_empty_take_has_the_columns_of_a_full_one_and_new_rows_show(
    open_store: Opener,
) -> None:
    store = open_store()
    assert store.drift_inbox_take().num_rows == 0  # nothing ever taken yet
    store.ingest_rows([_row("e1")])
    full = store.drift_inbox_take()
    store.drift_inbox_ack(_ids(full))
    empty = store.drift_inbox_take()  # an idle judge's poll
    assert empty.num_rows == 0
    assert empty.schema == full.schema
    store.ingest_rows([_row("e2")])
    assert _ids(store.drift_inbox_take()) == ["e2"]


def test_inbox_order_spans_ingests_and_a_reopen(open_store: Opener) -> None:
    store = open_store()
    store.ingest_rows([_row("x2"), _row("x1")])
    store.ingest_rows([_row("x0")])
    assert _ids(store.drift_inbox_take()) == ["x2", "x1", "x0"]
    store.close()
    again = open_store()
    assert again.drift_inbox_size() == 3
    again.ingest_rows([_row("x3")])
    assert _ids(again.drift_inbox_take())[-1] == "x3"


def test_a_failed_ingest_enqueues_nothing(open_store: Opener) -> None:
    store = open_store()

    def batches() -> Iterator[pa.Table]:
        yield pa.table(
            {
                LINE: pa.array([1], pa.int64()),
                **{k: pa.array([str(v)], pa.string()) for k, v in _row("lost").items()},
            }
        )
        raise OSError("the file went away mid-import")

    with pytest.raises(OSError, match="went away"):
        store.ingest_batches(batches(), source="cli")
    assert store.drift_inbox_size() == 0
    assert store.stats().records == 0


# --- named locks -----------------------------------------------------------------------
def test_a_named_lock_has_one_holder_until_released(open_store: Opener) -> None:
    store = open_store()
    judge = store.try_lock("drift-judge")
    assert judge is not None
    assert judge.held()
    assert judge.name == "drift-judge"
    assert store.try_lock("drift-judge") is None
    other = store.try_lock("retrain:chat")  # another name is independent
    assert other is not None
    judge.release()
    judge.release()  # idempotent
    assert not judge.held()
    with store.try_lock("drift-judge") as again:  # type: ignore[union-attr]
        assert again.held()
        assert store.try_lock("drift-judge") is None
    assert not again.held()
    other.release()


def test_closing_the_store_releases_its_locks(open_store: Opener) -> None:
    store = open_store()
    lock = store.try_lock("drift-judge")
    assert lock is not None
    store.close()
    assert not lock.held()
    reopened = open_store()
    assert reopened.try_lock("drift-judge") is not None


# --- outbox claims ---------------------------------------------------------------------
def _attempt(alert_id: str, attempt: int, delivered: bool) -> DeliveryAttempt:
    return DeliveryAttempt(
        alert_id=alert_id,
        attempt=attempt,
        at=T0,
        status_code=200 if delivered else 503,
        error=None if delivered else "HTTP 503",
        delivered=delivered,
        duration_s=0.01,
    )


def test_an_alert_is_claimed_by_one_holder_until_its_lease_ends(open_store: Opener) -> None:
    store: Any = open_store()
    a = store.enqueue_alert("ev-1", "http://hook/a", "{}", T0)
    b = store.enqueue_alert("ev-1", "http://hook/b", "{}", T0 + timedelta(seconds=1))
    now = T0 + timedelta(seconds=2)
    assert [m.alert_id for m in store.claim_alerts(now, "r1", lease_s=30.0, limit=1)] == [a]
    assert [m.alert_id for m in store.claim_alerts(now, "r2", lease_s=30.0)] == [b]
    assert store.claim_alerts(now, "r3", lease_s=30.0) == []
    assert store.claim_alerts(now + timedelta(seconds=29), "r3") == []
    # r1 died: its alert is due again once the lease is over
    later = now + timedelta(seconds=30)
    assert [m.alert_id for m in store.claim_alerts(later, "r3", lease_s=30.0)] == [a, b]


def test_recording_an_attempt_ends_the_claim(open_store: Opener) -> None:
    store: Any = open_store()
    a = store.enqueue_alert("ev-1", "http://hook/a", "{}", T0)
    (claimed,) = store.claim_alerts(T0, "r1", lease_s=600.0)
    assert (claimed.alert_id, claimed.attempts) == (a, 0)
    retry_at = T0 + timedelta(seconds=5)
    store.record_attempt(_attempt(a, 1, delivered=False), retry_at)
    assert store.claim_alerts(T0 + timedelta(seconds=4), "r2") == []  # not due yet
    (again,) = store.claim_alerts(retry_at, "r2", lease_s=600.0)
    assert again.attempts == 1
    store.record_attempt(_attempt(a, 2, delivered=True), None)
    store.mark_delivered(a, retry_at)
    assert store.claim_alerts(T0 + timedelta(days=1), "r3") == []
    (delivered,) = store.alerts(status="delivered")
    assert delivered.attempts == 2


# --- an existing (version 1) file ---------------------------------------------------------
def test_a_version_1_file_gains_the_inbox_and_claims(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    for statement in (*DDL, *DRIFT_DDL):
        con.execute(statement)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute(
        "INSERT INTO alert_outbox VALUES ('al-1', 'ev-1', 'http://hook', '{}', 0, ?, ?, "
        "NULL, 'pending')",
        [T0, T0],
    )
    con.close()
    with DuckDBStore(path) as store:
        (alert,) = store.claim_alerts(T0, "r1")
        assert alert.alert_id == "al-1"
        store.ingest_rows([_row("new")])
        assert _ids(store.drift_inbox_take()) == ["new"]
    with DuckDBStore(path) as store:  # reopening is idempotent
        assert store.drift_inbox_size() == 1
    con = duckdb.connect(str(path))
    (version,) = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() or ()
    con.close()
    assert version == str(SCHEMA_VERSION) == "4"


def test_a_version_2_file_gains_the_drift_state_table(tmp_path: Path) -> None:
    path = tmp_path / "v2.duckdb"
    con = duckdb.connect(str(path))
    for statement in (*DDL, *DRIFT_DDL, *COORDINATION_DDL[:-1]):  # everything but drift_state
        con.execute(statement)
    con.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    con.close()
    with DuckDBStore(path) as store:
        assert store.load_drift_state() == {}
        store.save_drift_state({"chat|default|h100": "{}"})
    con = duckdb.connect(str(path))
    (version,) = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() or ()
    con.close()
    assert version == str(SCHEMA_VERSION)


# --- the drift judge's state ---------------------------------------------------------------
def test_drift_state_outlives_the_store_and_is_seen_by_another(open_store: Opener) -> None:
    store = open_store()
    store.ingest_rows([_row("a"), _row("b")])
    store.save_drift_state({"chat|default|h100": '{"n":1}', "judge": "{}"}, ack=["a"])
    store.close()
    again = open_store()
    assert again.load_drift_state() == {"chat|default|h100": '{"n":1}', "judge": "{}"}
    assert _ids(again.drift_inbox_take()) == ["b"]
    again.save_drift_state({"chat|default|h100": '{"n":2}'}, drop=["judge"], ack=["b"])
    assert again.load_drift_state() == {"chat|default|h100": '{"n":2}'}
    assert again.drift_inbox_size() == 0
