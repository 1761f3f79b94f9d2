"""``POST /v1/forecasts``: latency distributions for requests a router is placing.

The hot path: the body is validated straight from JSON bytes, the call joins the
micro-batcher (concurrent calls share one predictor call in the worker thread) and
the answer is written with orjson. No registry or disk I/O happens per request.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from starlette.responses import Response

from serving._batcher import snapshot_key
from serving._body import json_body, json_response, parse_body
from serving._state import ServiceState
from serving.deps import ServiceDep
from serving.schemas import ForecastsRequest, ForecastsResponse

router = APIRouter(prefix="/v1", tags=["forecasts"])


@router.post(
    "/forecasts",
    response_model=ForecastsResponse,
    openapi_extra=json_body(ForecastsRequest),
    responses={
        404: {"description": "An unknown served model (the known ones are named)."},
        413: {"description": "More requests than the batch limit, or too large a body."},
        422: {"description": "Invalid body; `detail[*].loc` is the field path."},
    },
)
async def create_forecasts(service: ServiceDep, request: Request) -> Response:
    """Forecast the latency distribution of each request (`ForecastsRequest` body).

    Requests are grouped by served model and predicted with one vectorized call of
    that model's loaded champion, off the event loop; concurrent calls are batched
    together. Endpoint features come from a short-lived cache and prompt features from
    an LRU cache keyed by prompt hash, so no request touches the registry or the disk.
    Quantiles and means are in seconds.
    """
    return json_response(await answer(service, await request.body()))


async def answer(service: ServiceState, raw: bytes) -> dict[str, Any]:
    """The ``ForecastsResponse`` of a raw body (shared with the ASGI fast path).

    Raises:
        RequestValidationError: Invalid body (422 with the field path).
        HTTPException: 413 over the batch limit, 404 for an unknown served model.
    """
    body = parse_body(ForecastsRequest, raw)
    n = len(body.requests)
    if n > service.config.max_batch_items:
        raise HTTPException(
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"{n} requests in one call; the limit is {service.config.max_batch_items}",
        )
    loaded = service.models.snapshot()  # one consistent view for the whole call
    wanted = Counter(r.served_model for r in body.requests)
    unknown = sorted(set(wanted) - set(loaded))
    if unknown:
        known = ", ".join(sorted(loaded)) or "none (no champion is loaded yet)"
        raise HTTPException(
            status_code=status.HTTP_404_NOT_FOUND,
            detail=f"unknown served model(s): {', '.join(unknown)}; known: {known}",
        )
    levels = tuple(dict.fromkeys(body.quantiles))
    cdf_at = None if body.cdf_at is None else tuple(dict.fromkeys(body.cdf_at))
    forecasts = await service.forecaster.submit(
        snapshot_key(loaded, levels, cdf_at), body.requests, (loaded, levels, cdf_at)
    )
    counter = service.metrics.forecasts
    for served_model, count in wanted.items():
        counter.labels(served_model=served_model).inc(count)
    return {"forecasts": forecasts}
