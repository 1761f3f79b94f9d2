"""``/v1/drift``: group states, drift events, alert deliveries and drift reports."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from core.drift import DeliveryAttempt, DriftEvent, DriftReportInfo, GroupStatus
from serving.deps import DriftDep, HasTokenDep, RequireToken

router = APIRouter(prefix="/v1/drift", tags=["drift"])


class DriftOverview(BaseModel):
    """What this replica's monitor thinks of every group, and what was done about it.

    Group states and ``observed`` are this replica's: they move only while it is the
    judge (the replica holding the store's ``drift-judge`` lock). Events, reports,
    alerts and the inbox are the store's, shared by every replica.

    Attributes:
        groups: Every (served model, prompt class, device) group with its state.
        events: The most recent drift events (newest last).
        reports: Saved drift reports, newest first. ``path`` is the report's file name
            (read it at ``/v1/drift/reports/{report_id}``); the absolute path on the
            server only for a caller holding the API token.
        observed: Completions this replica judged since it started.
        pending_alerts: Alerts waiting in the outbox.
        judge: Whether this replica is the drift judge now.
        replica: This replica's id (``hostname-pid-random``; alert claims carry it).
        inbox: Completions waiting in the drift inbox to be judged.
    """

    groups: list[GroupStatus]
    events: list[DriftEvent]
    reports: list[DriftReportInfo]
    observed: int
    pending_alerts: int
    judge: bool
    replica: str
    inbox: int


@router.get("", responses={503: {"description": "Drift monitoring is not running."}})
async def drift_overview(
    drift: DriftDep,
    token: HasTokenDep,
    served_model: Annotated[str | None, Query(description="Only this served model.")] = None,
    events: Annotated[int, Query(ge=0, le=10_000, description="Recent events to list.")] = 100,
) -> DriftOverview:
    """Group states (``ok``/``ood`` with the latest test statistics), events and reports.

    Also whether this replica is the drift judge, and the inbox backlog.
    """
    groups = [g for g in drift.monitor.states() if served_model in (None, g.group.served_model)]
    tables = drift.tables

    def read() -> tuple[list[DriftEvent], list[DriftReportInfo], int, int]:
        inbox = drift.store.drift_inbox_size()
        if tables is None:
            return [], [], 0, inbox
        return (
            tables.drift_events(served_model, limit=events, newest=True) if events else [],
            tables.drift_reports(served_model),
            len(tables.alerts(status="pending")),
            inbox,
        )

    recent, reports, pending, inbox = await asyncio.to_thread(read)
    return DriftOverview(
        groups=groups,
        events=recent,
        reports=reports if token else [_relative(r) for r in reports],
        observed=drift.observed,
        pending_alerts=pending,
        judge=drift.is_judge,
        replica=drift.replica,
        inbox=inbox,
    )


def _relative(report: DriftReportInfo) -> DriftReportInfo:
    """``report`` with its file name in place of the server's absolute path."""
    return report.model_copy(update={"path": Path(report.path).name})


@router.get("/deliveries", responses={503: {"description": "Drift monitoring is not running."}})
async def drift_deliveries(
    drift: DriftDep,
    event_id: Annotated[str | None, Query(description="Only the alerts of this event.")] = None,
) -> list[DeliveryAttempt]:
    """The webhook delivery log: every attempt, oldest first."""
    if drift.tables is None:
        return []
    return await asyncio.to_thread(drift.tables.deliveries, None, event_id)


@router.post(
    "/reports",
    dependencies=[RequireToken],
    status_code=status.HTTP_201_CREATED,
    responses={
        401: {"description": "Missing or wrong bearer token (when one is configured)."},
        404: {
            "description": "No champion for that served model, or too few judged completions "
            "or training rows to compare; `detail` says which."
        },
        503: {"description": "Drift monitoring is not running."},
    },
)
async def create_drift_report(
    drift: DriftDep, served_model: Annotated[str, Query(min_length=1)]
) -> DriftReportInfo:
    """Write a drift report of ``served_model`` now (training data vs judged completions)."""
    try:
        return await asyncio.to_thread(drift.write_report, served_model)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


@router.get(
    "/reports/{report_id}",
    response_class=HTMLResponse,
    responses={
        404: {"description": "No report with that id."},
        503: {"description": "Drift monitoring is not running."},
    },
)
async def drift_report(drift: DriftDep, report_id: str) -> HTMLResponse:
    """The HTML of a saved drift report."""
    found = [] if drift.tables is None else drift.tables.drift_reports(report_id=report_id)
    path = Path(found[0].path) if found else None
    if path is None or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no drift report {report_id!r}")
    return HTMLResponse(await asyncio.to_thread(path.read_text, "utf-8"))
