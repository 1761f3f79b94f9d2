"""``POST /v1/forecasts``: latency distributions for requests a router is placing."""

from __future__ import annotations

import asyncio
from collections import Counter

from fastapi import APIRouter, HTTPException, status

from serving._forecast import forecast_batch
from serving.deps import ConfigDep, EndpointsDep, MetricsDep, ModelsDep
from serving.schemas import ForecastsRequest, ForecastsResponse

router = APIRouter(prefix="/v1", tags=["forecasts"])


@router.post(
    "/forecasts",
    responses={
        404: {"description": "An unknown served model (the known ones are named)."},
        413: {"description": "More requests than the batch limit, or too large a body."},
    },
)
async def create_forecasts(
    body: ForecastsRequest,
    models: ModelsDep,
    endpoints: EndpointsDep,
    config: ConfigDep,
    metrics: MetricsDep,
) -> ForecastsResponse:
    """Forecast the latency distribution of each request.

    Requests are grouped by served model and each group is predicted with one
    vectorized call of that model's loaded champion, off the event loop; endpoint
    features come from a short-lived cache, so no request touches the registry or
    the disk. Quantiles and means are in seconds.
    """
    if len(body.requests) > config.max_batch_items:
        raise HTTPException(
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"{len(body.requests)} requests in one call; the limit is "
            f"{config.max_batch_items}",
        )
    loaded = models.snapshot()  # one consistent view for the whole call
    wanted = Counter(r.served_model for r in body.requests)
    unknown = sorted(set(wanted) - set(loaded))
    if unknown:
        known = ", ".join(sorted(loaded)) or "none (no champion is loaded yet)"
        raise HTTPException(
            status_code=status.HTTP_404_NOT_FOUND,
            detail=f"unknown served model(s): {', '.join(unknown)}; known: {known}",
        )
    levels = list(dict.fromkeys(body.quantiles))
    cdf_at = None if body.cdf_at is None else list(dict.fromkeys(body.cdf_at))
    forecasts = await asyncio.to_thread(
        forecast_batch, loaded, body.requests, levels, cdf_at, endpoints.get
    )
    for served_model, count in wanted.items():
        metrics.forecasts.labels(served_model=served_model).inc(count)
    return ForecastsResponse(forecasts=forecasts)
