"""``POST /v1/traces``: OTLP/HTTP trace export; GenAI request spans become completions.

An inference server's (vLLM's ``--otlp-traces-endpoint``) or an OpenTelemetry
Collector's OTLP/HTTP exporter points here. The body is an ``ExportTraceServiceRequest``
in protobuf (``application/x-protobuf``) or OTLP/JSON (``application/json``), plain,
gzip or deflate. Each GenAI request span becomes one completion record (attributes
mapped by ``ServingConfig.otlp``) and goes the way of ``POST /v1/completions``: the same
validation, the same group-committed store ingest (idempotent by ``request_id``) and the
same drift feed. Other spans are ignored and counted. The answer is an
``ExportTraceServiceResponse`` in the request's encoding; its ``partial_success`` names
each rejected span and why, while the valid spans of the batch are stored.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, status
from starlette.responses import Response

from core import IngestReport, StoreError
from serving._batcher import MicroBatcher
from serving._drift import wake_drift
from serving._ingest import Outcome, TupleRows, report_of
from serving._metrics import ServiceMetrics
from serving.config import ServingConfig
from serving.deps import CompletionWriterDep, ConfigDep, MetricsDep, RequireToken
from serving.otlp import (
    COLUMNS,
    JSON,
    PROTOBUF,
    OtlpBodyError,
    OtlpTooLargeError,
    SpanBatch,
    count_spans,
    decode_batch,
    error_message,
    export_response,
    status_response,
)

router = APIRouter(prefix="/v1", tags=["traces"])

#: The ``source`` label stored with records that arrive as spans.
SOURCE = "otlp"
#: The writer context (and key) of span rows submitted as tuples in ``COLUMNS`` order.
TYPED = TupleRows(SOURCE, COLUMNS)

_STATUS = {"schema": {"type": "object", "description": "A google.rpc.Status."}}
_FAILED = {"content": {JSON: _STATUS, PROTOBUF: {"schema": {"type": "string", "format": "binary"}}}}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
            JSON: {"schema": {"type": "object", "description": "OTLP/JSON request."}},
        },
    }
}


@router.post(
    "/traces",
    dependencies=[RequireToken],
    openapi_extra=_BODY,
    response_class=Response,
    responses={
        200: {
            "description": "ExportTraceServiceResponse (partial_success names rejected spans).",
            "content": {
                JSON: {"schema": {"type": "object"}},
                PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
            },
        },
        400: {"description": "The body cannot be decoded.", **_FAILED},
        401: {"description": "Missing or wrong bearer token (when one is configured)."},
        413: {
            "description": "Too large a body, or more GenAI spans than the batch limit.",
            **_FAILED,
        },
        415: {"description": "Not protobuf or JSON, or an unknown Content-Encoding.", **_FAILED},
        503: {"description": "The feature store could not store the spans (none were).", **_FAILED},
    },
)
async def post_traces(
    writer: CompletionWriterDep, config: ConfigDep, metrics: MetricsDep, request: Request
) -> Response:
    """Store the GenAI request spans of an OTLP export as completions (idempotent).

    Protobuf or OTLP/JSON by ``Content-Type``; gzip or deflate by ``Content-Encoding``.
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in (PROTOBUF, JSON):
        reason = f"Content-Type {media or '(none)'!r}: send {PROTOBUF} or {JSON}"
        return status_response(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, reason, as_json=True)
    as_json = media == JSON
    batch = await _decode(request, config, as_json)
    if isinstance(batch, Response):
        return batch
    n = len(batch.origins)
    if n > config.max_batch_items:
        reason = f"{n} GenAI spans in one export; the limit is {config.max_batch_items}"
        return status_response(status.HTTP_413_CONTENT_TOO_LARGE, reason, as_json=as_json)
    try:
        outcomes: list[Any] = await _store(writer, batch) if n else []
    except StoreError as exc:
        reason = f"nothing was stored, retry later: {exc}"
        return status_response(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            reason,
            as_json=as_json,
            headers={"Retry-After": "1"},
        )
    report = report_of(outcomes)
    if report.accepted:
        wake_drift(request.app)  # the ingest put what it stored in the drift inbox
    rejected = [*batch.rejected, *(batch.describe(r) for r in report.rejected)]
    _count(metrics, report, batch, len(rejected))
    message = error_message(rejected) if rejected else ""
    return export_response(len(rejected), message, as_json=as_json)


async def _store(writer: MicroBatcher[Any, Outcome], batch: SpanBatch) -> list[Outcome]:
    """Store the batch's rows through the group-commit writer; one outcome per row.

    As typed columns (:data:`TYPED`) when that gives the outcomes of the rows as
    mappings (:attr:`SpanBatch.typed`), else as those mappings.

    Raises:
        StoreError: Nothing was stored.
    """
    if batch.typed:
        return await writer.submit(TYPED, batch.values, TYPED)
    return await writer.submit(SOURCE, batch.rows, SOURCE)


def _count(metrics: ServiceMetrics, report: IngestReport, batch: SpanBatch, rejected: int) -> None:
    """Add one export's outcomes to the completion and span counters.

    Args:
        metrics: The service metrics.
        report: The store's outcome of the batch's rows.
        batch: The decoded export (its ignored spans are counted).
        rejected: Spans rejected, in decoding or by the store.
    """
    metrics.completions_accepted.inc(report.accepted)
    metrics.completions_duplicates.inc(report.duplicates)
    metrics.completions_rejected.inc(len(report.rejected))
    count_spans(
        metrics.registry,
        accepted=report.accepted,
        duplicates=report.duplicates,
        rejected=rejected,
        ignored=batch.ignored,
    )


async def _decode(request: Request, config: ServingConfig, as_json: bool) -> SpanBatch | Response:
    """The request's spans sorted into rows, or the 400/413/415 answer (off the event loop)."""
    body = await request.body()
    encoding = request.headers.get("content-encoding")
    try:
        return await asyncio.to_thread(
            decode_batch,
            body,
            encoding,
            as_json=as_json,
            mapping=config.otlp,
            limit=config.max_body_bytes,
        )
    except OtlpBodyError as exc:
        return status_response(status.HTTP_400_BAD_REQUEST, str(exc), as_json=as_json)
    except OtlpTooLargeError as exc:
        return status_response(status.HTTP_413_CONTENT_TOO_LARGE, str(exc), as_json=as_json)
    except ValueError as exc:  # an unknown Content-Encoding
        return status_response(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(exc), as_json=as_json)
