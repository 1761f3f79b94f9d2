"""``/v1/store`` coordination: leased locks, the drift inbox and state, alert claims, drift reads.

Included by :mod:`serving.routes.store` (same prefix, same token check). A remote
client's named lock is held by the service for a lease the client renews
(:mod:`serving._store_locks`); everything else calls the service's store.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import Response
from pydantic import BaseModel, Field, model_validator

from core.drift import AlertMessage, DeliveryAttempt, DriftEvent, DriftReportInfo
from feature_store import ARROW_STREAM, table_bytes
from serving._drift_store import DriftReader
from serving._openapi import INVALID_BODY
from serving._store_locks import LeasedLocks, leases_for
from serving.deps import StoreDep

router = APIRouter()

_NO_TABLES: dict[int | str, dict[str, Any]] = {
    404: {"description": "The store keeps no drift tables."}
}
LockName = Annotated[str, Query(min_length=1, max_length=200, description="The lock's name.")]


class LeaseGranted(BaseModel):
    """A named lock now held for the client: its ``lock_id`` and lease, seconds."""

    name: str
    lock_id: str
    lease_s: float


class LockRef(BaseModel):
    """A held lock (to renew or release)."""

    name: str = Field(min_length=1)
    lock_id: str = Field(min_length=1)


class RequestIds(BaseModel):
    """Judged completions to acknowledge."""

    request_ids: list[str]


class DriftStateSave(BaseModel):
    """The arguments of :meth:`feature_store.RecordStore.save_drift_state`."""

    states: dict[str, str] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)
    ack: list[str] = Field(default_factory=list)


class AlertClaim(BaseModel):
    """The arguments of :meth:`feature_store.RecordStore.claim_alerts`."""

    now: datetime
    holder: str = Field(min_length=1)
    lease_s: float = Field(default=60.0, gt=0, le=86_400, allow_inf_nan=False)
    limit: int = Field(default=100, ge=1, le=10_000)

    @model_validator(mode="after")
    def _lease_ends_in_time(self) -> AlertClaim:
        """``now + lease_s`` must be a time (not past 9999-12-31)."""
        try:
            self.now + timedelta(seconds=self.lease_s)
        except OverflowError:
            raise ValueError("now + lease_s is past the last representable time") from None
        return self


async def get_drift_reader(store: StoreDep) -> DriftReader:
    """The store's drift tables (404 when it keeps none)."""
    if not isinstance(store, DriftReader):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this store keeps no drift tables")
    return store


async def get_leases(store: StoreDep) -> LeasedLocks:
    """The locks held for remote clients of the service's store."""
    return leases_for(store)


DriftReaderDep = Annotated[DriftReader, Depends(get_drift_reader)]
LeasesDep = Annotated[LeasedLocks, Depends(get_leases)]


# --- named locks ---------------------------------------------------------------------
@router.post("/locks", responses={409: {"description": "Another holder has the lock."}})
async def take_lock(
    leases: LeasesDep,
    name: LockName,
    lease_s: Annotated[float, Query(gt=0, le=3600, description="Lease, seconds.")] = 30.0,
) -> LeaseGranted:
    """Take the named lock for a lease the client renews (409 while another holds it)."""
    lock_id = await asyncio.to_thread(leases.acquire, name, lease_s)
    if lock_id is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"lock {name!r} is held")
    return LeaseGranted(name=name, lock_id=lock_id, lease_s=lease_s)


@router.post(
    "/locks/renew",
    responses={410: {"description": "The lease ran out or was lost."}, **INVALID_BODY},
)
async def renew_lock(leases: LeasesDep, lock: LockRef) -> LockRef:
    """Extend a held lock's lease (410 when the client no longer holds it)."""
    if not await asyncio.to_thread(leases.renew, lock.name, lock.lock_id):
        raise HTTPException(status.HTTP_410_GONE, f"lock {lock.name!r} is no longer held")
    return lock


@router.post("/locks/release", status_code=status.HTTP_204_NO_CONTENT, responses=INVALID_BODY)
async def release_lock(leases: LeasesDep, lock: LockRef) -> None:
    """Release a held lock (idempotent)."""
    await asyncio.to_thread(leases.release, lock.name, lock.lock_id)


# --- drift inbox and alert claims ------------------------------------------------------
@router.get("/drift/inbox", responses={200: {"content": {ARROW_STREAM: {}}}})
async def drift_inbox_take(
    store: StoreDep, limit: Annotated[int, Query(ge=1, le=100_000)] = 1000
) -> Response:
    """The oldest completions not yet judged (Arrow IPC stream; taking does not remove)."""

    def take() -> bytes:
        table: pa.Table = store.drift_inbox_take(limit)
        return table_bytes(table)

    return Response(await asyncio.to_thread(take), media_type=ARROW_STREAM)


@router.post("/drift/inbox/ack", responses=INVALID_BODY)
async def drift_inbox_ack(store: StoreDep, body: RequestIds) -> int:
    """Remove judged completions from the inbox; how many were removed."""
    return await asyncio.to_thread(store.drift_inbox_ack, body.request_ids)


@router.get("/drift/inbox/size")
async def drift_inbox_size(store: StoreDep) -> int:
    """Completions waiting in the drift inbox."""
    return await asyncio.to_thread(store.drift_inbox_size)


@router.put("/drift/state", status_code=status.HTTP_204_NO_CONTENT, responses=INVALID_BODY)
async def save_drift_state(store: StoreDep, body: DriftStateSave) -> None:
    """Upsert drift states, delete ``drop``, acknowledge ``ack``: one store transaction."""
    await asyncio.to_thread(
        lambda: store.save_drift_state(body.states, drop=body.drop, ack=body.ack)
    )


@router.get("/drift/state")
async def load_drift_state(store: StoreDep) -> dict[str, str]:
    """Every persisted drift state (JSON text), by group key (and the judge's key)."""
    return await asyncio.to_thread(store.load_drift_state)


@router.post("/drift/claims", responses=INVALID_BODY)
async def claim_alerts(store: StoreDep, claim: AlertClaim) -> list[AlertMessage]:
    """Claim due alerts of the outbox for ``holder`` for ``lease_s`` seconds."""
    c = claim
    return await asyncio.to_thread(store.claim_alerts, c.now, c.holder, c.lease_s, c.limit)


# --- drift tables (reads) ---------------------------------------------------------------
@router.get("/drift/events", responses=_NO_TABLES)
async def drift_events(
    tables: DriftReaderDep,
    served_model: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=0, le=100_000)] = 1000,
    newest: bool = False,
) -> list[DriftEvent]:
    """Stored drift events, oldest first (``newest``: the most recent ``limit``)."""
    return await asyncio.to_thread(
        lambda: tables.drift_events(
            served_model, kind=kind, since=since, limit=limit, newest=newest
        )
    )


@router.get("/drift/reports", responses=_NO_TABLES)
async def drift_reports(
    tables: DriftReaderDep, served_model: str | None = None, report_id: str | None = None
) -> list[DriftReportInfo]:
    """Saved drift reports, newest first."""
    return await asyncio.to_thread(tables.drift_reports, served_model, report_id)


@router.get("/drift/alerts", responses=_NO_TABLES)
async def drift_alerts(
    tables: DriftReaderDep,
    status: str | None = None,
    event_id: str | None = None,
) -> list[AlertMessage]:
    """Alerts in the outbox (``status``: pending, delivered or failed)."""
    return await asyncio.to_thread(tables.alerts, status, event_id)


@router.get("/drift/deliveries", responses=_NO_TABLES)
async def drift_deliveries(
    tables: DriftReaderDep, alert_id: str | None = None, event_id: str | None = None
) -> list[DeliveryAttempt]:
    """The webhook delivery log, oldest first."""
    return await asyncio.to_thread(tables.deliveries, alert_id, event_id)
