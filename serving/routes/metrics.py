"""``GET /metrics``: Prometheus text exposition of the service's own registry."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serving._metrics import CONTENT_TYPE
from serving.deps import MetricsDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(service_metrics: MetricsDep) -> Response:
    """Request latency by endpoint, forecasts, completions, model versions, registry errors."""
    return Response(content=service_metrics.render(), media_type=CONTENT_TYPE)
