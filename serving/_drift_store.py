"""What the service's drift monitor needs from a store beyond :class:`RecordStore`.

Both store backends keep drift events, the alert outbox, its delivery log and report
metadata (the DuckDB store in ``feature_store/_drift.py``, PostgreSQL in its own
tables); the service checks for them structurally, so a store without them (e.g. a
remote adapter) still serves, with events kept in memory only. :class:`DriftReader`,
the reads alone, is what the ``/v1/store/drift/*`` routes serve.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from core.drift import AlertMessage, DeliveryAttempt, DriftEvent, DriftReportInfo
from drift import AlertOutbox, DriftEventSink


@runtime_checkable
class DriftReader(Protocol):
    """The drift-table reads a store may offer (both store backends, and a remote one)."""

    def drift_events(
        self,
        served_model: str | None = None,
        *,
        kind: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
        newest: bool = False,
    ) -> list[DriftEvent]:
        """Stored events, oldest first (``newest``: the most recent ``limit``)."""
        ...

    def alerts(self, status: str | None = None, event_id: str | None = None) -> list[AlertMessage]:
        """Every alert in the outbox, optionally of one status or event."""
        ...

    def deliveries(
        self, alert_id: str | None = None, event_id: str | None = None
    ) -> list[DeliveryAttempt]:
        """The delivery log, oldest first."""
        ...

    def drift_reports(
        self, served_model: str | None = None, report_id: str | None = None
    ) -> list[DriftReportInfo]:
        """Saved reports, newest first."""
        ...


@runtime_checkable
class DriftStore(DriftReader, DriftEventSink, AlertOutbox, Protocol):
    """Drift events, the alert outbox (claimed by deliverers), deliveries and reports."""

    def record_drift_report(self, report: DriftReportInfo) -> bool:
        """Store a report's metadata; ``False`` when its id was stored already."""
        ...
