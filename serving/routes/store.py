"""``/v1/store``: the service's feature store for other local processes (the broker).

While the service owns a DuckDB store file (one writer process), ``tailcast ingest``,
``train``, ``store stats``, ``pipeline retrain``... reach the store through these
endpoints (:class:`feature_store.RemoteStore`). Arrow IPC streams carry raw ingest
batches, training frames and embeddings; JSON the rest. Every endpoint, reads
included, requires the API token when one is configured: they expose the data.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from core import IngestReport, StoreError
from feature_store import (
    ARROW_STREAM,
    EndpointStats,
    PreviousCall,
    RecordStore,
    StoreStats,
    bytes_table,
    read_tables,
    table_bytes,
    table_vectors,
    vectors_table,
)
from serving._drift import wake_drift
from serving._openapi import INVALID_BODY
from serving.deps import RequireToken, StoreDep
from serving.routes._store_shared import router as shared_router

Responses = dict[int | str, dict[str, Any]]

router = APIRouter(
    prefix="/v1/store",
    tags=["store"],
    dependencies=[RequireToken],
    responses={401: {"description": "Missing or wrong bearer token (when one is configured)."}},
)

#: Largest ingest body, bytes (spooled to a temporary file, never held in memory).
MAX_INGEST_BYTES = 16 * 2**30
#: Bytes buffered before a spool write (each write runs off the event loop).
SPOOL_FLUSH_BYTES = 4 * 2**20
router.include_router(shared_router)

_ARROW_BODY: dict[str, Any] = {
    "requestBody": {"content": {ARROW_STREAM: {"schema": {"type": "string"}}}}
}
_ARROW_ANSWER: Responses = {
    200: {"content": {ARROW_STREAM: {}}, "description": "An Arrow IPC stream."}
}
_BAD_BODY: Responses = {
    400: {"description": "Not an Arrow IPC stream, or batches the store refuses."}
}


class StoreInfo(BaseModel):
    """The store behind the service: ``backend`` class, ``path`` and the service ``pid``."""

    backend: str
    path: str | None
    pid: int


class RowsBody(BaseModel):
    """Untrusted completion rows (each validated on its own) and their source label."""

    rows: list[Any]
    source: str | None = None


class FrameQuery(BaseModel):
    """The arguments of :meth:`feature_store.RecordStore.training_frame`."""

    served_model: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    columns: list[str] | None = Field(default=None, min_length=1)
    as_of: datetime | None = None
    require: list[str] = ["latency_s"]
    endpoint_window: int = Field(default=50, ge=1)


class PreviousCallsQuery(BaseModel):
    """The arguments of :meth:`feature_store.RecordStore.previous_calls`."""

    request_ids: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        max_length=10_000
    )


class NewEmbeddings(BaseModel):
    """How many uploaded embeddings were not cached before."""

    new: int


EncoderId = Annotated[str, Query(min_length=1, description="The embedding's encoder id.")]


@router.get("")
async def store_info(store: StoreDep) -> StoreInfo:
    """Which store the service owns (clients check reachability and token with it)."""
    path = getattr(store, "path", None)
    return StoreInfo(
        backend=type(store).__name__, path=None if path is None else str(path), pid=os.getpid()
    )


@router.get("/stats")
async def store_stats(store: StoreDep) -> StoreStats:
    """Records per served model and device, prompts, embeddings, ingests."""
    return await asyncio.to_thread(store.stats)


@router.post(
    "/ingest",
    max_body_size=MAX_INGEST_BYTES,
    openapi_extra=_ARROW_BODY,
    responses={**_BAD_BODY, 415: {"description": f"The body is not {ARROW_STREAM}."}},
)
async def ingest(
    request: Request,
    store: StoreDep,
    source: Annotated[str | None, Query(description="Label stored with each record.")] = None,
    judge: Annotated[
        bool, Query(description="Judge the completions for drift (false: a backfill).")
    ] = True,
) -> IngestReport:
    """Ingest raw batches (Arrow IPC streams, usually chunked) in ONE transaction.

    The body is spooled to a temporary file first, so an aborted upload stores
    nothing; then every valid record of every batch is stored, or none.
    """
    if request.headers.get("content-type", "").split(";")[0].strip() != ARROW_STREAM:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"expected {ARROW_STREAM}")
    spooled = await _spool(request)
    try:
        report = await asyncio.to_thread(_ingest_file, store, spooled, source, judge)
        wake_drift(request.app)
        return report
    except (pa.ArrowException, OSError, StoreError, ValueError) as exc:  # OSError: bad IPC
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"nothing was stored: {exc}") from exc
    finally:
        spooled.unlink(missing_ok=True)


@router.post(
    "/rows",
    responses={
        **INVALID_BODY,
        503: {"description": "The store could not take the rows (none were)."},
    },
)
async def ingest_rows(body: RowsBody, store: StoreDep, request: Request) -> IngestReport:
    """Validate and store untrusted rows (a bad row is rejected alone, with its reason)."""
    try:
        report = await asyncio.to_thread(store.ingest_rows, body.rows, body.source)
        wake_drift(request.app)
        return report
    except StoreError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"nothing stored: {exc}") from exc


@router.post(
    "/frames",
    responses={
        **_ARROW_ANSWER,
        **INVALID_BODY,
        400: {"description": "Bad frame query, or a body that could not be parsed."},
    },
)
async def training_frame(query: FrameQuery, store: StoreDep) -> Response:
    """A point-in-time-correct training frame, as an Arrow IPC stream."""
    try:
        body = await asyncio.to_thread(_frame_bytes, store, query)
    except (ValueError, StoreError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    return Response(body, media_type=ARROW_STREAM)


@router.get("/endpoint-stats")
async def endpoint_stats(
    store: StoreDep,
    served_model: Annotated[str, Query(min_length=1)],
    device: Annotated[str, Query(min_length=1)],
    at: datetime,
    window: Annotated[int, Query(ge=1)] = 50,
) -> EndpointStats:
    """Endpoint features as a live predictor sees them at ``at``."""
    return await asyncio.to_thread(store.endpoint_stats, served_model, device, at, window)


@router.post("/previous-calls", responses=INVALID_BODY)
async def previous_calls(query: PreviousCallsQuery, store: StoreDep) -> dict[str, PreviousCall]:
    """The workflow features (previous call) of stored records, as training rows get them."""
    return await asyncio.to_thread(store.previous_calls, query.request_ids)


@router.post("/embeddings", openapi_extra=_ARROW_BODY, responses=_BAD_BODY)
async def put_embeddings(request: Request, store: StoreDep, encoder_id: EncoderId) -> NewEmbeddings:
    """Cache embeddings (Arrow: ``key`` string, ``vector`` list<float32>)."""
    raw = await request.body()
    try:
        new = await asyncio.to_thread(_put_embeddings, store, encoder_id, raw)
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"bad embeddings body: {exc}") from exc
    return NewEmbeddings(new=new)


@router.post(
    "/embeddings/lookup", openapi_extra=_ARROW_BODY, responses={**_ARROW_ANSWER, **_BAD_BODY}
)
async def get_embeddings(request: Request, store: StoreDep, encoder_id: EncoderId) -> Response:
    """Look up cached embeddings of the ``key`` column: ``found`` (bool) and ``vector``."""
    raw = await request.body()
    try:
        body = await asyncio.to_thread(_lookup_embeddings, store, encoder_id, raw)
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"bad lookup body: {exc}") from exc
    return Response(body, media_type=ARROW_STREAM)


@router.get("/embeddings/missing", responses=_ARROW_ANSWER)
async def prompts_missing_embeddings(store: StoreDep, encoder_id: EncoderId) -> Response:
    """Stored prompts with no embedding for ``encoder_id`` (Arrow: ``sha256``, ``text``)."""
    return Response(
        await asyncio.to_thread(_missing_bytes, store, encoder_id), media_type=ARROW_STREAM
    )


# --- work done off the event loop ------------------------------------------------------
async def _spool(request: Request) -> Path:
    """Write the request body to a temporary file (400 when the client aborts)."""
    fd, name = tempfile.mkstemp(prefix="tailcast-ingest-", suffix=".arrows")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            buffer = bytearray()
            async for chunk in request.stream():
                buffer += chunk
                if len(buffer) >= SPOOL_FLUSH_BYTES:
                    await asyncio.to_thread(out.write, bytes(buffer))
                    buffer.clear()
            await asyncio.to_thread(out.write, bytes(buffer))
    except ClientDisconnect as exc:
        path.unlink(missing_ok=True)
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "upload aborted; nothing stored") from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _ingest_file(store: RecordStore, path: Path, source: str | None, judge: bool) -> IngestReport:
    with pa.OSFile(str(path)) as body:
        return store.ingest_batches(read_tables(body), source=source, judge=judge)


def _frame_bytes(store: RecordStore, q: FrameQuery) -> bytes:
    columns: Sequence[str] | None = q.columns
    frame = store.training_frame(
        q.served_model,
        q.start,
        q.end,
        columns,
        as_of=q.as_of,
        require=tuple(q.require),
        endpoint_window=q.endpoint_window,
    )
    return table_bytes(frame)


def _put_embeddings(store: RecordStore, encoder_id: str, raw: bytes) -> int:
    table = bytes_table(raw)
    keys = [str(k) for k in table.column("key").to_pylist()]
    return store.put_embeddings(encoder_id, keys, table_vectors(table))


def _lookup_embeddings(store: RecordStore, encoder_id: str, raw: bytes) -> bytes:
    keys = [str(k) for k in bytes_table(raw).column("key").to_pylist()]
    found, vectors = store.get_embeddings(encoder_id, keys)
    table = vectors_table(keys, vectors, "key").append_column("found", pa.array(found))
    return table_bytes(table)


def _missing_bytes(store: RecordStore, encoder_id: str) -> bytes:
    pairs = list(store.prompts_missing_embeddings(encoder_id))
    return table_bytes(
        pa.table(
            {
                "sha256": pa.array([s for s, _ in pairs], pa.string()),
                "text": pa.array([t for _, t in pairs], pa.string()),
            }
        )
    )
