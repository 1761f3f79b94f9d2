"""llm-d latency-predictor endpoints on tailcast's port.

Prediction server: ``POST /predict``, ``/predict/bulk``, ``/predict/bulk/strict``,
``POST /reload``, ``GET /status`` (``/healthz`` and ``/readyz`` are tailcast's own and
answer in a shape llm-d's clients accept). Training server: ``POST
/add_training_data_bulk``. Status codes follow llm-d: 422 for invalid bodies, 503
while no TTFT/TPOT model is loaded, 202 for accepted training data.

Bulk semantics:

* ``/predict/bulk/strict``: the whole body is validated first; one invalid item
  answers 422 (with its field path) and nothing is predicted.
* ``/predict/bulk``: each item is validated on its own and the valid ones are
  predicted. With every item valid it answers 200. With an invalid item it answers
  422, as llm-d does (its body is validated whole), with llm-d's ``detail`` (one
  entry per invalid item, with its field path) *and* the valid items' answers:
  ``predictions`` (``null`` for the invalid ones), ``errors`` (index, reason, the
  item as sent) and the counts, so a client that reads the body loses nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import ValidationError
from starlette.responses import Response

from core import StoreError
from serving._body import json_body, json_response, json_safe, parse_body
from serving._openapi import INVALID
from serving._state import ServiceState
from serving.compat._mapping import entry_record
from serving.compat.schemas import (
    MODEL_TYPE,
    OBJECTIVE_TYPE,
    BulkPredictionRequest,
    BulkPredictionResponse,
    BulkPredictionResponseWithErrors,
    BulkTrainingRequest,
    LenientBulkRequest,
    PredictionRequest,
    PredictionResponse,
    ReloadResponse,
    StatusResponse,
    TrainingAccepted,
)
from serving.deps import RequireToken

router = APIRouter(tags=["llm-d"])

#: The ``source`` label of records that arrive as llm-d training data.
SOURCE = "llm-d"
_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"description": "The TTFT or TPOT model is not loaded yet."}
}
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong bearer token (when one is configured)."}
}
_TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"description": "More items than the batch limit, or too large a body."}
}


def _service(request: Request) -> ServiceState:
    service: ServiceState = request.app.state.service
    return service


def _check_size(service: ServiceState, n: int, what: str) -> None:
    """413 when a call carries more items than the service's batch limit."""
    limit = service.config.max_batch_items
    if n > limit:
        raise HTTPException(
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"{n} {what} in one call; the limit is {limit}",
        )


@router.post(
    "/predict",
    response_model=PredictionResponse,
    openapi_extra=json_body(PredictionRequest),
    responses={**_NOT_READY, **INVALID},
)
async def predict(request: Request) -> Response:
    """TTFT and TPOT (ms) of one request at the service's quantile."""
    service = _service(request)
    item = parse_body(PredictionRequest, await request.body())
    (answer,) = await service.llmd.predict([item])
    return json_response(answer)


@router.post(
    "/predict/bulk/strict",
    response_model=BulkPredictionResponse,
    openapi_extra=json_body(BulkPredictionRequest),
    responses={**_NOT_READY, **_TOO_LARGE, **INVALID},
)
async def predict_bulk_strict(request: Request) -> Response:
    """Predict every request, or none: one invalid item answers 422."""
    start = time.perf_counter()
    service = _service(request)
    body = parse_body(BulkPredictionRequest, await request.body())
    _check_size(service, len(body.requests), "requests")
    answers = await service.llmd.predict(body.requests)
    n = len(answers)
    return json_response(
        {
            "predictions": answers,
            "total_requests": n,
            "successful_predictions": n,
            "failed_predictions": 0,
            "processing_time_ms": (time.perf_counter() - start) * 1000.0,
        }
    )


@router.post(
    "/predict/bulk",
    response_model=BulkPredictionResponseWithErrors,
    openapi_extra=json_body(LenientBulkRequest),
    responses={**_NOT_READY, **_TOO_LARGE, **INVALID},
)
async def predict_bulk(request: Request) -> Response:
    """Predict the valid requests; report the invalid ones by index, in place."""
    start = time.perf_counter()
    service = _service(request)
    body = parse_body(LenientBulkRequest, await request.body())
    _check_size(service, len(body.requests), "requests")
    valid: list[PredictionRequest] = []
    where: list[int] = []
    errors: list[dict[str, object]] = []
    details: list[dict[str, object]] = []
    for i, raw in enumerate(body.requests):
        try:
            valid.append(PredictionRequest.model_validate(raw))
            where.append(i)
        except ValidationError as exc:
            found = exc.errors(include_url=False, include_context=False)
            reason = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in found
            )
            errors.append({"index": i, "error": json_safe(reason), "request": json_safe(raw)})
            details += [
                {"type": e["type"], "loc": ["body", "requests", i, *e["loc"]], "msg": e["msg"]}
                for e in found
            ]
    predictions: list[object] = [None] * len(body.requests)
    if valid:
        for i, answer in zip(where, await service.llmd.predict(valid), strict=True):
            predictions[i] = answer
    return json_response(
        {
            **({"detail": details} if details else {}),
            "predictions": predictions,
            "errors": errors,
            "total_requests": len(body.requests),
            "successful_predictions": len(valid),
            "failed_predictions": len(errors),
            "processing_time_ms": (time.perf_counter() - start) * 1000.0,
        },
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT if errors else status.HTTP_200_OK,
    )


@router.post("/reload", dependencies=[RequireToken], responses=_AUTH)
async def reload(request: Request) -> ReloadResponse:
    """Poll the registry now; load and swap new TTFT/TPOT (and other) champions."""
    service = _service(request)
    before = service.llmd.loaded()
    registry = await service.poller.poll_now()
    after = service.llmd.loaded()
    ready = None not in after
    return ReloadResponse(
        synced=bool(registry.reachable),
        loaded=any(a is not b for a, b in zip(before, after, strict=True)),
        is_ready=ready,
        model_type=MODEL_TYPE,
        objective_type=OBJECTIVE_TYPE,
        quantile=service.llmd.quantile,
        last_load_time=service.llmd.last_load(),
    )


@router.get("/status")
async def status_endpoint(request: Request) -> StatusResponse:
    """Readiness of the TTFT and TPOT models, llm-d's ``StatusResponse`` shape."""
    service = _service(request)
    ttft, tpot = service.llmd.loaded()
    return StatusResponse(
        is_ready=ttft is not None and tpot is not None,
        model_type=MODEL_TYPE,
        objective_type=OBJECTIVE_TYPE,
        quantile=service.llmd.quantile,
        last_model_load=service.llmd.last_load(),
        training_server_url=str(request.base_url).rstrip("/"),
        models_exist={"ttft_model": ttft is not None, "tpot_model": tpot is not None},
    )


@router.post(
    "/add_training_data_bulk",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[RequireToken],
    openapi_extra=json_body(BulkTrainingRequest),
    responses={
        **_AUTH,
        **_TOO_LARGE,
        **INVALID,
        503: {"description": "The feature store could not store the batch (nothing was)."},
    },
)
async def add_training_data_bulk(request: Request) -> TrainingAccepted:
    """Store observed TTFT/TPOT samples durably (202 once stored); retrained in background.

    The whole batch is validated first (422 with the field path, nothing stored), as
    llm-d does. Each entry becomes a completion record of the llm-d served model; a
    retried batch (same entries, same timestamps) is stored once.
    """
    service = _service(request)
    body = parse_body(BulkTrainingRequest, await request.body())
    n = len(body.entries)
    _check_size(service, n, "entries")
    name = service.llmd.served_model
    rows = [entry_record(e, name) for e in body.entries]
    try:
        report = await asyncio.to_thread(service.store.ingest_rows, rows, SOURCE)
    except StoreError as exc:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"nothing was stored, retry later: {exc}",
        ) from exc
    if report.rejected:  # entries valid for llm-d but not as records: say which
        first = report.rejected[0]
        raise HTTPException(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"entries[{first.index}].{first.field or ''}: {first.reason} "
            f"({len(report.rejected)} rejected, {report.accepted} stored)",
        )
    service.llmd.training(service.store, service.settings.home).invalidate()
    service.metrics.completions_accepted.inc(report.accepted)
    service.metrics.completions_duplicates.inc(report.duplicates)
    return TrainingAccepted(
        message=f"Accepted {n} training samples.",
        stored=report.accepted,
        duplicates=report.duplicates,
    )
