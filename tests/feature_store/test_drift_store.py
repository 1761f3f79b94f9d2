"""Drift events, the alert outbox (with claims) and its delivery log, in every store backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from core.drift import DeliveryAttempt, DriftEvent, DriftGroup, DriftReportInfo, alert_id_for
from feature_store import DuckDBStore, PostgresStore, RecordStore

DriftStore = DuckDBStore | PostgresStore

T0 = datetime(2026, 4, 11, 7, 0, tzinfo=UTC)
G = DriftGroup(served_model="deepseek-chat", prompt_class="default", device="deepseek-api")


def _event(kind: str = "ood", at: datetime = T0, model: str = "deepseek-chat") -> DriftEvent:
    g = G.model_copy(update={"served_model": model})
    return DriftEvent.create(g, kind, at, "3", 250, {"ks_pvalue": 1e-6, "coverage_90": 0.71})  # type: ignore[arg-type]


@pytest.fixture
def db(store_opener: Callable[[], RecordStore]) -> DriftStore:
    """A store of every backend (the ``store_opener`` fixture's)."""
    return cast(DriftStore, store_opener())


def test_events_are_idempotent_and_filtered(db: DriftStore) -> None:
    e1 = _event()
    e2 = _event("recovered", T0 + timedelta(hours=1))
    e3 = _event(model="other", at=T0 + timedelta(minutes=5))
    assert [db.record_drift_event(e) for e in (e1, e1, e2, e3)] == [True, False, True, True]
    assert db.drift_events() == [e1, e3, e2]
    assert db.drift_events("deepseek-chat") == [e1, e2]
    assert db.drift_events(kind="ood") == [e1, e3]
    assert db.drift_events(since=T0 + timedelta(minutes=1)) == [e3, e2]
    assert db.drift_events(limit=1) == [e1]
    assert db.drift_events(limit=2, newest=True) == [e3, e2]


def test_outbox_lifecycle(db: DriftStore) -> None:
    e = _event()
    db.record_drift_event(e)
    a = db.enqueue_alert(e.event_id, "http://127.0.0.1:9/hook", '{"x":1}', T0)
    assert a == alert_id_for(e.event_id, "http://127.0.0.1:9/hook")
    assert db.enqueue_alert(e.event_id, "http://127.0.0.1:9/hook", '{"x":1}', T0) == a
    assert [m.alert_id for m in db.pending_alerts(T0)] == [a]
    assert db.pending_alerts(T0 - timedelta(seconds=1)) == []
    # A failed attempt reschedules it; it is not due before then.
    fail = DeliveryAttempt(
        alert_id=a, attempt=1, at=T0, status_code=503, error="HTTP 503", delivered=False
    )
    db.record_attempt(fail, T0 + timedelta(seconds=2))
    assert db.pending_alerts(T0 + timedelta(seconds=1)) == []
    (due,) = db.pending_alerts(T0 + timedelta(seconds=2))
    assert due.attempts == 1
    assert due.body == '{"x":1}'
    ok = DeliveryAttempt(
        alert_id=a, attempt=2, at=T0 + timedelta(seconds=2), status_code=200, delivered=True
    )
    db.record_attempt(ok, None)
    db.mark_delivered(a, ok.at)
    assert db.pending_alerts(T0 + timedelta(days=1)) == []
    (done,) = db.alerts(status="delivered")
    assert done.delivered_at == ok.at
    assert done.attempts == 2
    assert db.deliveries(alert_id=a) == [fail, ok]
    assert db.deliveries(event_id=e.event_id) == [fail, ok]
    assert db.deliveries(event_id="nope") == []


def test_giving_up_parks_the_alert_as_failed(db: DriftStore) -> None:
    a = db.enqueue_alert("ev", "http://x", "{}", T0)
    db.record_attempt(
        DeliveryAttempt(alert_id=a, attempt=1, at=T0, error="refused", delivered=False), None
    )
    assert db.pending_alerts(T0 + timedelta(days=365)) == []
    assert [m.alert_id for m in db.alerts(status="failed")] == [a]


def test_outbox_survives_reopening_the_store(
    durable_store_opener: Callable[[], RecordStore],
) -> None:
    first = cast(DriftStore, durable_store_opener())
    e = _event()
    first.record_drift_event(e)
    a = first.enqueue_alert(e.event_id, "http://127.0.0.1:9/hook", "{}", T0)
    first.close()
    again = cast(DriftStore, durable_store_opener())
    assert [m.alert_id for m in again.pending_alerts(T0)] == [a]
    assert again.drift_events() == [e]
    again.close()


def test_reports_metadata(db: DriftStore) -> None:
    r1 = DriftReportInfo(
        report_id="r1",
        served_model="m",
        created_at=T0,
        path="/a.html",
        reference_rows=10,
        current_rows=5,
        summary={"drift_share": 0.5, "pvalue:u": 1e-9},
    )
    r2 = r1.model_copy(
        update={"report_id": "r2", "created_at": T0 + timedelta(1), "mlflow_run_id": "abc"}
    )
    assert db.record_drift_report(r1)
    assert db.record_drift_report(r2)
    assert not db.record_drift_report(r1)
    assert db.drift_reports() == [r2, r1]
    assert db.drift_reports("other") == []
    assert db.drift_reports(report_id="r1") == [r1]


def _outbox(db: DriftStore, n: int) -> list[str]:
    """``n`` alerts due at T0, T0 + 1 s, ... (oldest first)."""
    return [
        db.enqueue_alert(f"ev{i}", "http://127.0.0.1:9/hook", "{}", T0 + timedelta(seconds=i))
        for i in range(n)
    ]


def test_claims_hand_each_due_alert_to_one_claimer(db: DriftStore) -> None:
    a0, a1, a2 = _outbox(db, 3)
    now = T0 + timedelta(seconds=10)
    assert [m.alert_id for m in db.claim_alerts(now, "a", lease_s=60, limit=2)] == [a0, a1]
    assert [m.alert_id for m in db.claim_alerts(now, "b", lease_s=60)] == [a2]
    assert db.claim_alerts(now, "c") == []
    assert db.claim_alerts(now + timedelta(seconds=59), "c") == []
    # The leases end: every alert is due again (its deliverer is presumed dead).
    expired = db.claim_alerts(now + timedelta(seconds=60), "c")
    assert [m.alert_id for m in expired] == [a0, a1, a2]
    assert [m.alert_id for m in db.pending_alerts(now)] == [a0, a1, a2]


def test_claims_skip_alerts_not_yet_due_and_end_with_an_attempt(db: DriftStore) -> None:
    a0, a1 = _outbox(db, 2)
    assert [m.alert_id for m in db.claim_alerts(T0, "a")] == [a0]  # a1 is due at T0 + 1 s
    fail = DeliveryAttempt(alert_id=a0, attempt=1, at=T0, error="refused", delivered=False)
    db.record_attempt(fail, T0 + timedelta(seconds=2))
    # The attempt ended a's claim: the retry is due at T0 + 2 s for anyone.
    assert [m.alert_id for m in db.claim_alerts(T0 + timedelta(seconds=1), "b")] == [a1]
    (retry,) = db.claim_alerts(T0 + timedelta(seconds=2), "b")
    assert (retry.alert_id, retry.attempts) == (a0, 1)
    db.mark_delivered(a0, T0 + timedelta(seconds=3))
    # Delivered alerts are never claimed again; a1's lease ended long ago.
    assert [m.alert_id for m in db.claim_alerts(T0 + timedelta(days=1), "c")] == [a1]
