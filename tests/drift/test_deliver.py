"""Webhook delivery against a real HTTP receiver on loopback, through the DuckDB outbox."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.drift import DriftEvent
from drift import SIGNATURE_HEADER, Deliverer, DriftResponder, RetrainDebouncer, verify
from feature_store import DuckDBStore

if TYPE_CHECKING:  # mypy maps tests/drift/*.py to top-level modules (no __init__.py)
    from _receiver import Receiver
    from _streams import GROUP, T0
else:
    from tests.drift._receiver import Receiver
    from tests.drift._streams import GROUP, T0

SECRET = "webhook-secret"


def _event(minutes: int = 0) -> DriftEvent:
    at = T0.replace(minute=minutes)
    return DriftEvent.create(GROUP, "ood", at, "3", 125, {"ks_pvalue": 1e-9, "coverage_90": 0.7})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _drain(deliverer: Deliverer, store: DuckDBStore, timeout_s: float = 10.0) -> None:
    """Run delivery passes until nothing is pending (or fail after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while store.alerts(status="pending"):
        assert time.monotonic() < deadline, "alerts still pending"
        deliverer.deliver_due()
        time.sleep(0.01)


def test_receiver_fails_then_recovers_and_gets_the_signed_alert(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    with Receiver(fail_first=2) as rx:
        responder = DriftResponder(store, [rx.url])
        assert responder.handle([_event(), _event()]) == 1
        deliverer = Deliverer(store, SECRET, base_delay_s=0.05, max_delay_s=1.0)
        _drain(deliverer, store)
    assert [r.status for r in rx.requests] == [503, 503, 200]
    bodies = {r.body for r in rx.requests}
    assert len(bodies) == 1  # the same bytes every attempt
    body = bodies.pop()
    for r in rx.requests:
        assert verify(body, SECRET, r.headers[SIGNATURE_HEADER])
        assert not verify(body, "other-secret", r.headers[SIGNATURE_HEADER])
        assert r.headers["X-Tailcast-Event"] == _event().event_id
    payload = json.loads(body)
    assert payload["type"] == "tailcast.drift.v1"
    assert DriftEvent.model_validate(payload["event"]) == _event()
    log = store.deliveries(event_id=_event().event_id)
    assert [(a.attempt, a.status_code, a.delivered) for a in log] == [
        (1, 503, False),
        (2, 503, False),
        (3, 200, True),
    ]
    # Exponential backoff: the second wait is at least twice the base delay.
    assert (log[1].at - log[0].at).total_seconds() >= 0.05
    assert (log[2].at - log[1].at).total_seconds() >= 0.10
    (alert,) = store.alerts(status="delivered")
    assert alert.attempts == 3
    store.close()


def test_alerts_survive_a_restart_and_are_delivered_at_least_once(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/hooks/drift"
    first = DuckDBStore(path)
    DriftResponder(first, [url]).handle([_event(1), _event(2)])
    # Nobody listens yet: the first attempts fail with a refused connection.
    attempts = Deliverer(first, SECRET, base_delay_s=0.01).deliver_due()
    assert [a.delivered for a in attempts] == [False, False]
    assert all(a.status_code is None and a.error for a in attempts)
    first.close()  # the service stops with both alerts pending

    again = DuckDBStore(path)
    assert len(again.alerts(status="pending")) == 2
    with Receiver(port=port) as rx:
        time.sleep(0.02)  # past the backoff of the first attempt
        _drain(Deliverer(again, SECRET, base_delay_s=0.01), again)
    events = sorted(
        DriftEvent.model_validate(json.loads(r.body)["event"]).event_id for r in rx.requests
    )
    assert events == sorted([_event(1).event_id, _event(2).event_id])
    assert {a.attempt for a in again.deliveries() if a.delivered} == {2}
    again.close()


def test_giving_up_after_max_attempts(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    with Receiver(fail_first=100) as rx:
        DriftResponder(store, [rx.url]).handle([_event()])
        deliverer = Deliverer(store, SECRET, base_delay_s=0.01, max_attempts=3)
        deadline = time.monotonic() + 10
        while store.alerts(status="pending") and time.monotonic() < deadline:
            deliverer.deliver_due()
            time.sleep(0.01)
    assert len(rx.requests) == 3
    (failed,) = store.alerts(status="failed")
    assert failed.attempts == 3
    store.close()


def test_background_thread_delivers_on_wake(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    with Receiver() as rx:
        deliverer = Deliverer(store, SECRET)
        deliverer.start(poll_s=30.0)  # only a wake-up makes it send within the test
        try:
            time.sleep(0.05)
            DriftResponder(store, [rx.url], on_alert=deliverer.wake).handle([_event()])
            deadline = time.monotonic() + 10
            while not store.alerts(status="delivered"):
                assert time.monotonic() < deadline
                time.sleep(0.01)
        finally:
            deliverer.stop()
    assert [r.status for r in rx.requests] == [200]
    store.close()


def test_retraining_requests_are_debounced(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    asked: list[tuple[str, str]] = []
    responder = DriftResponder(
        store, [], RetrainDebouncer(cooldown_s=3600), lambda m, e: asked.append((m, e.event_id))
    )
    responder.handle([_event(0), _event(10), _event(0)])
    recovered = DriftEvent.create(
        GROUP, "recovered", datetime(2026, 4, 11, 9, tzinfo=UTC), "3", 9, {}
    )
    responder.handle([recovered])
    assert asked == [("deepseek-chat", _event(0).event_id)]
    assert [e.event_id for e in store.drift_events()] == [
        _event(0).event_id,
        _event(10).event_id,
        recovered.event_id,
    ]
    assert store.alerts() == []
    store.close()


@pytest.mark.parametrize("secret", [None, ""])
def test_unsigned_when_no_secret(tmp_path: Path, secret: str | None) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    with Receiver() as rx:
        DriftResponder(store, [rx.url]).handle([_event()])
        _drain(Deliverer(store, secret), store)
    assert SIGNATURE_HEADER not in rx.requests[0].headers
    store.close()


def test_two_deliverers_on_one_store_never_send_an_alert_twice(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    with Receiver() as rx:
        urls = [f"{rx.url}?hook={k}" for k in range(3)]
        DriftResponder(store, urls).handle([_event(m) for m in range(20)])
        assert len(store.alerts(status="pending")) == 60
        replicas = [Deliverer(store, SECRET, holder=f"replica-{k}") for k in range(2)]
        for deliverer in replicas:
            deliverer.start(poll_s=0.001)
        try:
            deadline = time.monotonic() + 30
            while store.alerts(status="pending"):
                assert time.monotonic() < deadline, "alerts still pending"
                time.sleep(0.01)
        finally:
            for deliverer in replicas:
                deliverer.stop()
    deliveries = [r.headers["X-Tailcast-Delivery"] for r in rx.requests]
    assert len(deliveries) == len(set(deliveries)) == 60
    assert {a.attempt for a in store.deliveries()} == {1}
    store.close()


def test_an_alert_claimed_by_a_dead_deliverer_is_sent_after_its_lease(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    now = [T0]
    with Receiver() as rx:
        DriftResponder(store, [rx.url]).handle([_event()])
        # A replica claimed it for 60 s and died before sending it.
        (claimed,) = store.claim_alerts(datetime.now(UTC), "dead-replica", lease_s=60.0)
        survivor = Deliverer(store, SECRET, holder="survivor", clock=lambda: now[0])
        now[0] = datetime.now(UTC) + timedelta(seconds=59)
        assert survivor.deliver_due() == []
        now[0] += timedelta(seconds=2)
        (attempt,) = survivor.deliver_due()
    assert attempt.delivered
    assert attempt.alert_id == claimed.alert_id
    assert [r.headers["X-Tailcast-Delivery"] for r in rx.requests] == [claimed.alert_id]
    store.close()
