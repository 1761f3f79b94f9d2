"""The drift-table reads of :class:`~feature_store.RemoteStore` (a mixin; JSON over HTTP)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from pydantic import TypeAdapter

from core.drift import AlertMessage, DeliveryAttempt, DriftEvent, DriftReportInfo


class RemoteDriftReads:
    """``DriftTables``' reads through the service's ``/v1/store/drift/*`` endpoints."""

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
