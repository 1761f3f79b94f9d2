"""The drift tables and drift state of :class:`~feature_store.RemoteStore` (a mixin; JSON).

Reads of events, reports, alerts and deliveries, and the drift judge's state
(``save_drift_state``/``load_drift_state``: one request each, the service's store does
the transaction).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from pydantic import TypeAdapter

from core import StoreError
from core.drift import AlertMessage, DeliveryAttempt, DriftEvent, DriftReportInfo


class RemoteDriftReads:
    """``DriftTables``' reads and the drift state through ``/v1/store/drift/*``."""

    path: str
    read_only: bool

    def _call(
        self,
        method: str,
        path: str,
        query: Mapping[str, object] | None = None,
        body: bytes | Iterable[bytes] | None = None,
        content_type: str = "application/json",
    ) -> bytes:
        raise NotImplementedError

    def drift_events(
        self,
        served_model: str | None = None,
        *,
        kind: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
        newest: bool = False,
    ) -> list[DriftEvent]:
        """Stored drift events (see ``DriftTables.drift_events``)."""
        query = {"served_model": served_model, "kind": kind, "since": since}
        raw = self._call("GET", "/drift/events", {**query, "limit": limit, "newest": newest})
        return TypeAdapter(list[DriftEvent]).validate_json(raw)

    def drift_reports(
        self, served_model: str | None = None, report_id: str | None = None
    ) -> list[DriftReportInfo]:
        """Saved drift reports, newest first (see ``DriftTables.drift_reports``)."""
        query = {"served_model": served_model, "report_id": report_id}
        return TypeAdapter(list[DriftReportInfo]).validate_json(
            self._call("GET", "/drift/reports", query)
        )

    def alerts(self, status: str | None = None, event_id: str | None = None) -> list[AlertMessage]:
        """Alerts in the outbox (see ``DriftTables.alerts``)."""
        query = {"status": status, "event_id": event_id}
        return TypeAdapter(list[AlertMessage]).validate_json(
            self._call("GET", "/drift/alerts", query)
        )

    def deliveries(
        self, alert_id: str | None = None, event_id: str | None = None
    ) -> list[DeliveryAttempt]:
        """The delivery log (see ``DriftTables.deliveries``)."""
        query = {"alert_id": alert_id, "event_id": event_id}
        return TypeAdapter(list[DeliveryAttempt]).validate_json(
            self._call("GET", "/drift/deliveries", query)
        )

    def save_drift_state(
        self,
        states: Mapping[str, str],
        *,
        drop: Sequence[str] = (),
        ack: Sequence[str] = (),
    ) -> None:
        """See :meth:`RecordStore.save_drift_state` (one transaction in the service)."""
        if self.read_only:
            raise StoreError(f"feature store {self.path} was opened read-only")
        body = {"states": dict(states), "drop": list(drop), "ack": list(ack)}
        self._call("PUT", "/drift/state", body=json.dumps(body).encode())

    def load_drift_state(self) -> dict[str, str]:
        """See :meth:`RecordStore.load_drift_state`."""
        return TypeAdapter(dict[str, str]).validate_json(self._call("GET", "/drift/state"))
