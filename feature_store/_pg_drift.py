"""Drift events, the alert outbox with claims, its delivery log and reports, in PostgreSQL.

:class:`PgDriftTables` is mixed into :class:`~feature_store.PostgresStore` and has the
methods and semantics of the DuckDB store's :class:`~feature_store.DriftTables` (every
write idempotent: events by ``event_id``, alerts by ``alert_id``, attempts by (alert,
attempt)), plus :meth:`PgDriftTables.claim_alerts`, which lets several deliverers
drain one outbox: each due alert goes to one claimer for a lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from psycopg_pool import ConnectionPool

from core.drift import AlertMessage, DeliveryAttempt, DriftEvent, DriftReportInfo, alert_id_for
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


class PgDriftTables:
    """Drift methods of the PostgreSQL store (a mixin; needs ``_pool``)."""

    _pool: ConnectionPool

    def _pg_write(self, sql: str, params: Sequence[object]) -> int:
        """Run one write in its own transaction; rows affected."""
        with self._pool.connection() as conn:
            return conn.execute(sql, list(params)).rowcount

    def _pg_read(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            return conn.execute(sql, list(params)).fetchall()

    # --- events ------------------------------------------------------------------
    def record_drift_event(self, event: DriftEvent) -> bool:
        """Store ``event``; ``False`` when its ``event_id`` was already stored."""
        n = self._pg_write(
            f"INSERT INTO drift_events ({EVENT_COLS}, recorded_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now()) ON CONFLICT DO NOTHING",
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
        where, params = filters("%s", served_model=served_model, kind=kind)
        if since is not None:
            where.append("occurred_at >= %s")
            params.append(since)
        cond = f"WHERE {' AND '.join(where)}" if where else ""
        order = "DESC" if newest else "ASC"
        rows = self._pg_read(
            f"SELECT {EVENT_COLS} FROM drift_events {cond} "
            f'ORDER BY occurred_at {order}, event_id COLLATE "C" {order} LIMIT %s',
            [*params, limit],
        )
        events = [event_row(r) for r in rows]
        return events[::-1] if newest else events

    # --- outbox ------------------------------------------------------------------
    def enqueue_alert(self, event_id: str, url: str, body: str, now: datetime) -> str:
        """Queue an alert of ``event_id`` to ``url`` (idempotent); its ``alert_id``."""
        aid = alert_id_for(event_id, url)
        self._pg_write(
            f"INSERT INTO alert_outbox ({ALERT_COLS}, status) "
            "VALUES (%s, %s, %s, %s, 0, %s, %s, NULL, 'pending') ON CONFLICT DO NOTHING",
            [aid, event_id, url, body, now, now],
        )
        return aid

    def pending_alerts(self, now: datetime, limit: int = 100) -> list[AlertMessage]:
        """Undelivered alerts due at ``now``, oldest due first (claimed or not).

        Several deliverers sharing the store use :meth:`claim_alerts` instead.
        """
        rows = self._pg_read(
            f"SELECT {ALERT_COLS} FROM alert_outbox WHERE status = 'pending' "
            "AND next_attempt_at <= %s "
            'ORDER BY next_attempt_at, created_at, alert_id COLLATE "C" LIMIT %s',
            [now, limit],
        )
        return [alert_row(r) for r in rows]

    def claim_alerts(
        self, now: datetime, holder: str, lease_s: float = 60.0, limit: int = 100
    ) -> list[AlertMessage]:
        """Claim up to ``limit`` due alerts for ``holder`` until ``now + lease_s``.

        An alert is claimable when it is pending, due (``next_attempt_at <= now``) and
        unclaimed or its claim's lease has ended (its deliverer died or stalled). Rows
        another claimer is claiming at the same moment are skipped (``FOR UPDATE SKIP
        LOCKED``), so concurrent claimers never get the same alert for one lease.
        :meth:`record_attempt` and :meth:`mark_delivered` clear the claim.

        Args:
            now: The claimer's clock (UTC-aware).
            holder: Who claims (e.g. a replica id); stored for operators.
            lease_s: Seconds the claim lasts.
            limit: Most alerts to claim.

        Returns:
            The claimed alerts, oldest due first.
        """
        until = now + timedelta(seconds=lease_s)
        rows = self._pg_read(
            "UPDATE alert_outbox o SET claimed_by = %s, claimed_until = %s FROM ("
            "SELECT alert_id FROM alert_outbox WHERE status = 'pending' "
            "AND next_attempt_at <= %s AND (claimed_until IS NULL OR claimed_until <= %s) "
            'ORDER BY next_attempt_at, created_at, alert_id COLLATE "C" LIMIT %s '
            "FOR UPDATE SKIP LOCKED) due WHERE o.alert_id = due.alert_id "
            f"RETURNING {', '.join('o.' + c.strip() for c in ALERT_COLS.split(','))}",
            [holder, until, now, now, limit],
        )
        alerts = [alert_row(r) for r in rows]
        return sorted(alerts, key=lambda a: (a.next_attempt_at, a.created_at, a.alert_id))

    def alerts(self, status: str | None = None, event_id: str | None = None) -> list[AlertMessage]:
        """Every alert in the outbox (``status``: pending, delivered or failed)."""
        where, params = filters("%s", status=status, event_id=event_id)
        cond = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._pg_read(
            f"SELECT {ALERT_COLS} FROM alert_outbox {cond} "
            'ORDER BY created_at, alert_id COLLATE "C"',
            params,
        )
        return [alert_row(r) for r in rows]

    def record_attempt(self, attempt: DeliveryAttempt, next_attempt_at: datetime | None) -> None:
        """Log ``attempt``; a failed one is rescheduled, or parked as failed without a next.

        Clears the alert's claim.
        """
        a = attempt
        status = "pending" if a.delivered or next_attempt_at is not None else "failed"
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(
                f"INSERT INTO alert_deliveries ({ATTEMPT_COLS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                attempt_params(a),
            )
            conn.execute(
                "UPDATE alert_outbox SET attempts = greatest(attempts, %s), "
                "next_attempt_at = %s, status = CASE WHEN status = 'delivered' "
                "THEN status ELSE %s END, claimed_by = NULL, claimed_until = NULL "
                "WHERE alert_id = %s",
                [a.attempt, next_attempt_at, status, a.alert_id],
            )

    def mark_delivered(self, alert_id: str, at: datetime) -> None:
        """Mark the alert delivered (it leaves the pending set; its claim is cleared)."""
        self._pg_write(
            "UPDATE alert_outbox SET status = 'delivered', delivered_at = "
            "coalesce(delivered_at, %s), next_attempt_at = NULL, claimed_by = NULL, "
            "claimed_until = NULL WHERE alert_id = %s",
            [at, alert_id],
        )

    def deliveries(
        self, alert_id: str | None = None, event_id: str | None = None
    ) -> list[DeliveryAttempt]:
        """The delivery log, oldest first, optionally of one alert or one event's alerts."""
        where, params = filters("%s", alert_id=alert_id)
        if event_id is not None:
            where.append("alert_id IN (SELECT alert_id FROM alert_outbox WHERE event_id = %s)")
            params.append(event_id)
        cond = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._pg_read(
            f"SELECT {ATTEMPT_COLS} FROM alert_deliveries {cond} "
            'ORDER BY attempted_at, alert_id COLLATE "C", attempt',
            params,
        )
        return [attempt_row(r) for r in rows]

    # --- reports -------------------------------------------------------------------
    def record_drift_report(self, report: DriftReportInfo) -> bool:
        """Store a report's metadata; ``False`` when its id was already stored."""
        n = self._pg_write(
            f"INSERT INTO drift_reports ({REPORT_COLS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            report_params(report),
        )
        return n == 1

    def drift_reports(
        self, served_model: str | None = None, report_id: str | None = None
    ) -> list[DriftReportInfo]:
        """Saved reports, newest first (optionally of one served model, or one id)."""
        where, params = filters("%s", served_model=served_model, report_id=report_id)
        cond = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._pg_read(
            f"SELECT {REPORT_COLS} FROM drift_reports {cond} "
            'ORDER BY created_at DESC, report_id COLLATE "C"',
            params,
        )
        return [report_row(r) for r in rows]
