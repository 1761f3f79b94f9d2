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
    """The durable outbox a :class:`~drift._deliver.Deliverer` drains."""

    def pending_alerts(self, now: datetime, limit: int = 100) -> list[AlertMessage]:
        """Undelivered alerts due at ``now`` (``next_attempt_at <= now``), oldest first."""
        ...

    def record_attempt(self, attempt: DeliveryAttempt, next_attempt_at: datetime | None) -> None:
        """Log ``attempt``; on failure reschedule the alert at ``next_attempt_at``."""
        ...

    def mark_delivered(self, alert_id: str, at: datetime) -> None:
        """Mark the alert delivered (it leaves the pending set)."""
        ...
