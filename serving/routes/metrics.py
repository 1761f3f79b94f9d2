"""``GET /metrics``: Prometheus text exposition of the service's own registry.

Followed by llm-d's training-server lines (``model_type{type=...}``, sample counts;
see :mod:`serving.compat`), which llm-d's clients and tests read from the same path.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response

from serving._metrics import CONTENT_TYPE
from serving.deps import ServiceDep

router = APIRouter(tags=["metrics"])
logger = logging.getLogger(__name__)


@router.get("/metrics", response_class=Response)
async def metrics(service: ServiceDep) -> Response:
    """Request latency by endpoint, forecasts, completions, model versions, registry errors."""
    body = service.metrics.render()
    try:
        body += (await service.llmd.metric_text(service.store, service.settings.home)).encode()
    except Exception:  # the store is down: the service's own metrics still answer
        logger.warning("llm-d metric lines unavailable", exc_info=True)
    return Response(content=body, media_type=CONTENT_TYPE)
