"""Drift events, the durable alert outbox, its delivery log and drift reports, in DuckDB.

:class:`DriftTables` is mixed into :class:`~feature_store.DuckDBStore`; it satisfies the
``DriftEventSink`` and ``AlertOutbox`` protocols of ``drift/`` structurally (the
feature store never imports drift). Every write is idempotent: events by
``event_id``, alerts by ``alert_id`` (event x url), attempts by (alert, attempt).
Because the outbox is a table in the store file, alerts queued before a crash or a
restart are still pending afterwards; the next deliverer sends them (at least once).
Deliverers take alerts with :meth:`DriftTables.claim_alerts`, which hands each due alert
to one of them for a lease, so several deliverers never send an alert at the same time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from core.drift import AlertMessage, DeliveryAttempt, DriftEvent, DriftReportInfo, alert_id_for
from feature_store._connection import StoreConnection
from feature_store._drift_rows import (
    ALERT_COLS,
    ATTEMPT_COLS,
    EVENT_COLS,
    REPORT_COLS,
    alert_row,
    attempt_params,
    attempt_row,
    event_params,
    event_row,
    filters,
    report_params,
    report_row,
)


class DriftTables:
    """Drift methods of the DuckDB store (a mixin; needs ``_db``)."""

    _db: StoreConnection

    def _drift_write(self, sql: str, params: Sequence[object]) -> int:
        with self._db.write() as cur:
            row = cur.execute(sql, list(params)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _drift_read(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        with self._db.read() as cur:
            return cur.execute(sql, list(params)).fetchall()

    # --- events ------------------------------------------------------------------
    def record_drift_event(self, event: DriftEvent) -> bool:
        """Store ``event``; ``False`` when its ``event_id`` was already stored."""
        n = self._drift_write(
            f"INSERT INTO drift_events ({EVENT_COLS}, recorded_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now()) ON CONFLICT DO NOTHING",
            event_params(event),
        )
        return n == 1

    def drift_events(
        self,
        served_model: str | None = None,
        *,
        kind: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
        newest: bool = False,
    ) -> list[DriftEvent]:
        """Stored events, oldest first, optionally of one served model/kind, at >= since.

        ``limit`` keeps the oldest matching events, or with ``newest=True`` the most
        recent ones (still returned oldest first).
        """
        where, params = filters("?", served_model=served_model, kind=kind)
        if since is not None:
            where.append("occurred_at >= ?")
            params.append(since)
        cond = f"WHERE {' AND '.join(where)}" if where else ""
        order = "DESC" if newest else "ASC"
        rows = self._drift_read(
            f"SELECT {EVENT_COLS} FROM drift_events {cond} "
            f"ORDER BY occurred_at {order}, event_id {order} LIMIT ?",
            [*params, limit],
        )
        events = [event_row(r) for r in rows]
        return events[::-1] if newest else events

    # --- outbox ------------------------------------------------------------------
    def enqueue_alert(self, event_id: str, url: str, body: str, now: datetime) -> str:
        """Queue an alert of ``event_id`` to ``url`` (idempotent); its ``alert_id``."""
        aid = alert_id_for(event_id, url)
        self._drift_write(
            f"INSERT INTO alert_outbox ({ALERT_COLS}, status) "
            "VALUES (?, ?, ?, ?, 0, ?, ?, NULL, 'pending') ON CONFLICT DO NOTHING",
            [aid, event_id, url, body, now, now],
        )
        return aid

    def pending_alerts(self, now: datetime, limit: int = 100) -> list[AlertMessage]:
        """Undelivered alerts due at ``now``, oldest due first."""
        rows = self._drift_read(
            f"SELECT {ALERT_COLS} FROM alert_outbox WHERE status = 'pending' "
            "AND next_attempt_at <= ? ORDER BY next_attempt_at, created_at, alert_id LIMIT ?",
            [now, limit],
        )
        return [alert_row(r) for r in rows]

    def claim_alerts(
        self, now: datetime, holder: str, lease_s: float = 60.0, limit: int = 100
    ) -> list[AlertMessage]:
        """Claim up to ``limit`` due alerts for ``holder`` until ``now + lease_s``.

        Due: pending, ``next_attempt_at <= now``, and unclaimed or with an expired lease
        (its deliverer died or stalled), oldest due first. While the lease runs no other
        claim returns the alert; :meth:`record_attempt` and :meth:`mark_delivered` end it.

        Args:
            now: The current time (UTC).
            holder: Who claims (a replica id, e.g. ``hostname-pid-random``).
            lease_s: Seconds the claim lasts; longer than one delivery attempt.
            limit: Alerts claimed at most.
        """
        until = now + timedelta(seconds=lease_s)
        with self._db.transaction() as cur:
            cur.execute("SET TimeZone = 'UTC'")
            rows = cur.execute(
                f"SELECT {ALERT_COLS} FROM alert_outbox WHERE status = 'pending' "
                "AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?) "
                "ORDER BY next_attempt_at, created_at, alert_id LIMIT ?",
                [now, now, limit],
            ).fetchall()
            cur.execute(
                "UPDATE alert_outbox SET claimed_by = ?, claimed_until = ? "
                "WHERE list_contains(?, alert_id)",
                [holder, until, [r[0] for r in rows]],
            )
        return [alert_row(r) for r in rows]

    def alerts(self, status: str | None = None, event_id: str | None = None) -> list[AlertMessage]:
        """Every alert in the outbox (``status``: pending, delivered or failed)."""
        where, params = filters("?", status=status, event_id=event_id)
        cond = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._drift_read(
            f"SELECT {ALERT_COLS} FROM alert_outbox {cond} ORDER BY created_at, alert_id", params
        )
        return [alert_row(r) for r in rows]

    def record_attempt(self, attempt: DeliveryAttempt, next_attempt_at: datetime | None) -> None:
        """Log ``attempt`` and end its claim; a failed one is rescheduled, or parked as failed.

        A failed attempt without ``next_attempt_at`` parks the alert as failed.
        """
        a = attempt
        status = "pending" if a.delivered or next_attempt_at is not None else "failed"
        with self._db.transaction() as cur:
            cur.execute(
                f"INSERT INTO alert_deliveries ({ATTEMPT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                attempt_params(a),
            )
            cur.execute(
                "UPDATE alert_outbox SET attempts = greatest(attempts, ?), "
                "next_attempt_at = ?, status = CASE WHEN status = 'delivered' "
                "THEN status ELSE ? END, claimed_by = NULL, claimed_until = NULL "
                "WHERE alert_id = ?",
                [a.attempt, next_attempt_at, status, a.alert_id],
            )

    def mark_delivered(self, alert_id: str, at: datetime) -> None:
        """Mark the alert delivered (it leaves the pending set; its claim ends)."""
        self._drift_write(
            "UPDATE alert_outbox SET status = 'delivered', delivered_at = coalesce(delivered_at, "
            "?), next_attempt_at = NULL, claimed_by = NULL, claimed_until = NULL "
            "WHERE alert_id = ?",
            [at, alert_id],
        )

    def deliveries(
        self, alert_id: str | None = None, event_id: str | None = None
    ) -> list[DeliveryAttempt]:
        """The delivery log, oldest first, optionally of one alert or one event's alerts."""
        where, params = filters("?", alert_id=alert_id)
        if event_id is not None:
            where.append("alert_id IN (SELECT alert_id FROM alert_outbox WHERE event_id = ?)")
            params.append(event_id)
        cond = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._drift_read(
            f"SELECT {ATTEMPT_COLS} FROM alert_deliveries {cond} "
            "ORDER BY attempted_at, alert_id, attempt",
            params,
        )
        return [attempt_row(r) for r in rows]

    # --- reports -------------------------------------------------------------------
    def record_drift_report(self, report: DriftReportInfo) -> bool:
        """Store a report's metadata; ``False`` when its id was already stored."""
        n = self._drift_write(
            f"INSERT INTO drift_reports ({REPORT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            report_params(report),
        )
        return n == 1

    def drift_reports(
        self, served_model: str | None = None, report_id: str | None = None
    ) -> list[DriftReportInfo]:
        """Saved reports, newest first (optionally of one served model, or one id)."""
        where, params = filters("?", served_model=served_model, report_id=report_id)
        cond = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._drift_read(
            f"SELECT {REPORT_COLS} FROM drift_reports {cond} ORDER BY created_at DESC, report_id",
            params,
        )
        return [report_row(r) for r in rows]
