"""The drift tables' columns and rows, shared by the DuckDB and PostgreSQL backends.

Both stores select and insert the same columns in the same order; this module turns
their rows into :mod:`core.drift` objects and those objects into insert parameters.
Only the SQL around them differs (placeholders, collations, transactions).
"""

from __future__ import annotations

import json
from typing import Any

from core.drift import AlertMessage, DeliveryAttempt, DriftEvent, DriftGroup, DriftReportInfo

EVENT_COLS = (
    "event_id, served_model, prompt_class, device, kind, occurred_at, model_version, "
    "n_samples, statistics"
)
ALERT_COLS = "alert_id, event_id, url, body, attempts, next_attempt_at, created_at, delivered_at"
ATTEMPT_COLS = "alert_id, attempt, attempted_at, status_code, error, delivered, duration_s"
REPORT_COLS = (
    "report_id, served_model, created_at, path, reference_rows, current_rows, "
    "mlflow_run_id, summary"
)


def _floats(raw: str) -> dict[str, float]:
    return {str(k): float(v) for k, v in json.loads(raw).items()}


def event_row(row: tuple[Any, ...]) -> DriftEvent:
    """The event of a row of :data:`EVENT_COLS`."""
    eid, model, pclass, device, kind, at, version, n, stats = row
    return DriftEvent(
        event_id=eid,
        group=DriftGroup(served_model=model, prompt_class=pclass, device=device),
        kind=kind,
        at=at,
        model_version=version,
        n_samples=int(n),
        statistics=_floats(stats),
    )


def event_params(event: DriftEvent) -> list[object]:
    """The values of :data:`EVENT_COLS` to insert ``event``."""
    g = event.group
    return [
        event.event_id,
        g.served_model,
        g.prompt_class,
        g.device,
        event.kind,
        event.at,
        event.model_version,
        event.n_samples,
        json.dumps(event.statistics),
    ]


def alert_row(row: tuple[Any, ...]) -> AlertMessage:
    """The alert of a row of :data:`ALERT_COLS` (due at creation when never tried)."""
    aid, eid, url, body, attempts, next_at, created, delivered = row
    return AlertMessage(
        alert_id=aid,
        event_id=eid,
        url=url,
        body=body,
        attempts=int(attempts),
        next_attempt_at=next_at if next_at is not None else created,
        created_at=created,
        delivered_at=delivered,
    )


def attempt_row(row: tuple[Any, ...]) -> DeliveryAttempt:
    """The delivery attempt of a row of :data:`ATTEMPT_COLS`."""
    return DeliveryAttempt(
        alert_id=row[0],
        attempt=int(row[1]),
        at=row[2],
        status_code=row[3],
        error=row[4],
        delivered=bool(row[5]),
        duration_s=float(row[6]),
    )


def attempt_params(attempt: DeliveryAttempt) -> list[object]:
    """The values of :data:`ATTEMPT_COLS` to insert ``attempt``."""
    a = attempt
    return [a.alert_id, a.attempt, a.at, a.status_code, a.error, a.delivered, a.duration_s]


def report_row(row: tuple[Any, ...]) -> DriftReportInfo:
    """The report metadata of a row of :data:`REPORT_COLS`."""
    return DriftReportInfo(
        report_id=row[0],
        served_model=row[1],
        created_at=row[2],
        path=row[3],
        reference_rows=int(row[4]),
        current_rows=int(row[5]),
        mlflow_run_id=row[6],
        summary=_floats(row[7]),
    )


def report_params(report: DriftReportInfo) -> list[object]:
    """The values of :data:`REPORT_COLS` to insert ``report``."""
    r = report
    return [
        r.report_id,
        r.served_model,
        r.created_at,
        r.path,
        r.reference_rows,
        r.current_rows,
        r.mlflow_run_id,
        json.dumps(r.summary),
    ]


def filters(placeholder: str, **equal: str | None) -> tuple[list[str], list[object]]:
    """``col = <placeholder>`` conditions and their values, for the values not None.

    Args:
        placeholder: The driver's parameter marker (``?`` for DuckDB, ``%s`` for psycopg).
        **equal: Column name to the value it must equal (None: no condition).
    """
    where = [f"{col} = {placeholder}" for col, v in equal.items() if v is not None]
    return where, [v for v in equal.values() if v is not None]
