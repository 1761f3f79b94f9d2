"""Drift events, the alert outbox and its delivery log in the DuckDB store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.drift import DeliveryAttempt, DriftEvent, DriftGroup, DriftReportInfo, alert_id_for
from feature_store import DuckDBStore

T0 = datetime(2026, 4, 11, 7, 0, tzinfo=UTC)
G = DriftGroup(served_model="deepseek-chat", prompt_class="default", device="deepseek-api")


def _event(kind: str = "ood", at: datetime = T0, model: str = "deepseek-chat") -> DriftEvent:
    g = G.model_copy(update={"served_model": model})
    return DriftEvent.create(g, kind, at, "3", 250, {"ks_pvalue": 1e-6, "coverage_90": 0.71})  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path: Path) -> DuckDBStore:
    return DuckDBStore(tmp_path / "store.duckdb")


def test_events_are_idempotent_and_filtered(db: DuckDBStore) -> None:
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


def test_outbox_lifecycle(db: DuckDBStore) -> None:
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


def test_giving_up_parks_the_alert_as_failed(db: DuckDBStore) -> None:
    a = db.enqueue_alert("ev", "http://x", "{}", T0)
    db.record_attempt(
        DeliveryAttempt(alert_id=a, attempt=1, at=T0, error="refused", delivered=False), None
    )
    assert db.pending_alerts(T0 + timedelta(days=365)) == []
    assert [m.alert_id for m in db.alerts(status="failed")] == [a]


def test_outbox_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    first = DuckDBStore(path)
    e = _event()
    first.record_drift_event(e)
    a = first.enqueue_alert(e.event_id, "http://127.0.0.1:9/hook", "{}", T0)
    first.close()
    again = DuckDBStore(path)
    assert [m.alert_id for m in again.pending_alerts(T0)] == [a]
    assert again.drift_events() == [e]
    again.close()


def test_reports_metadata(db: DuckDBStore) -> None:
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
