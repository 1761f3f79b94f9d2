"""What the drift actions need from a store: the protocols the feature store implements.

drift/ never imports the feature store; serving and pipelines pass the store in, and it
satisfies these protocols structurally.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from core.drift import AlertMessage, DeliveryAttempt, DriftEvent


class DriftEventSink(Protocol):
    """Keeps drift events and queues their alerts."""

    def record_drift_event(self, event: DriftEvent) -> bool:
        """Store ``event``; ``False`` when its ``event_id`` was already stored."""
        ...

    def enqueue_alert(self, event_id: str, url: str, body: str, now: datetime) -> str:
        """Queue an alert (idempotent by (event_id, url)); its ``alert_id``."""
        ...


class AlertOutbox(Protocol):
    """The durable outbox deliverers drain (:class:`~drift._deliver.Deliverer`), one claim each."""

    def claim_alerts(
        self, now: datetime, holder: str, lease_s: float = 60.0, limit: int = 100
    ) -> list[AlertMessage]:
        """Claim due alerts for ``holder`` until ``now + lease_s`` (oldest due first).

        Due: undelivered, ``next_attempt_at <= now``, unclaimed or with an expired lease.
        """
        ...

    def record_attempt(self, attempt: DeliveryAttempt, next_attempt_at: datetime | None) -> None:
        """Log ``attempt`` and end its claim; on failure reschedule it at ``next_attempt_at``."""
        ...

    def mark_delivered(self, alert_id: str, at: datetime) -> None:
        """Mark the alert delivered (it leaves the pending set; its claim ends)."""
        ...
