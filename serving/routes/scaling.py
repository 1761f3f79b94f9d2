"""``GET /v1/scaling/{served_model}``: desired replicas and forecast load, for KEDA or an HPA.

KEDA's ``metrics-api`` scaler reads one number from a JSON answer by a GJSON path
(``valueLocation``): point it at ``desired_replicas`` with ``targetValue: "1"`` (the
HPA then asks for ``ceil(desired_replicas / 1)`` replicas), or at ``forecast_load``
with ``targetValue`` set to the utilisation one replica should carry. See
``docs/hooks.md`` for the ScaledObject. The same numbers are Prometheus gauges
(``tailcast_scaling_*``) on ``/metrics``.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from core import MAX_COUNT
from scheduler_hooks import plan
from serving._scaling import GRID, forecast_rows, placed_count, set_gauges
from serving._state import ServiceState
from serving.deps import ScalingStateDep, ServiceDep
from serving.schemas import ForecastRequest

router = APIRouter(prefix="/v1", tags=["scaling"])


class ScalingAnswer(BaseModel):
    """What a served model needs now.

    Attributes:
        served_model: The served model.
        device: The scale-up device type the work was forecast on.
        model_version: Registry version of the predictor that forecast the work.
        desired_replicas: Replicas the forecast scaler wants (KEDA: ``valueLocation``
            ``desired_replicas``, ``targetValue`` ``"1"``).
        forecast_load: Busy replicas the forecast work needs (rate x mean work / slots).
        arrival_rate: Requests placed through tailcast per second over the window.
        window_s: The window, seconds.
        mean_work_s: Forecast mean work of one request, seconds.
        p95_work_s: Forecast P95 work of one request, seconds.
        in_flight: Requests in flight by Little's law (rate x mean work).
        backlog_s: The ``quantile`` of the in-flight work, seconds of service.
    """

    served_model: str
    device: str
    model_version: int
    desired_replicas: int
    forecast_load: float
    arrival_rate: float
    window_s: float
    mean_work_s: float
    p95_work_s: float
    in_flight: float
    backlog_s: float


@router.get(
    "/scaling/{served_model}",
    responses={
        404: {"description": "An unknown served model (the known ones are named)."},
        422: {"description": "Invalid query; `detail[*].loc` names the parameter."},
    },
)
async def get_scaling(
    served_model: str,
    service: ServiceDep,
    scaling: ScalingStateDep,
    device: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    slots: Annotated[int, Query(ge=1, le=4096)] = 1,
    slo_s: Annotated[float, Query(gt=0.0, le=86_400.0)] = 30.0,
    quantile: Annotated[float, Query(gt=0.0, lt=1.0)] = 0.95,
    min_replicas: Annotated[int, Query(ge=0, le=100_000)] = 1,
    max_replicas: Annotated[int, Query(ge=1, le=100_000)] = 64,
    window_s: Annotated[float, Query(ge=5.0, le=3600.0)] = 60.0,
    fanout: Annotated[float, Query(ge=1.0, le=1024.0)] = 1.0,
    input_tokens: Annotated[int | None, Query(ge=0, le=MAX_COUNT)] = None,
) -> ScalingAnswer:
    """Replicas ``served_model`` needs on ``device`` (default: the predictor's first device).

    Work per request is the loaded predictor's forecast for a request of
    ``input_tokens`` (unknown when absent) on ``device``; the arrival rate counts
    requests placed through tailcast over the last ``window_s`` seconds (forecast
    items / ``fanout`` + AIBrix decisions), read at each call. Replicas:
    ``max(load need, backlog need)`` from the ``forecast`` scaler, where the load need
    serves the rate with forecast work per request at the ``quantile`` within ``slo_s``
    and the backlog need drains the ``quantile`` of the in-flight work within ``slo_s``
    on ``slots`` per replica; clipped to
    ``[max(min_replicas, 1), max_replicas]``, except that ``min_replicas=0`` with no
    traffic in the window answers 0 (scale to zero).
    """
    _check_bounds(min_replicas, max_replicas)
    dev = _device(service, served_model, device)
    rate = scaling.window(served_model, window_s, fanout).rate(
        time.monotonic(), placed_count(service, served_model, fanout)
    )
    item = ForecastRequest(served_model=served_model, device=dev, input_tokens=input_tokens)
    versions, rows, means = await forecast_rows(service, [item], GRID)
    mean = float(means[0])
    p = plan(
        GRID,
        rows[0],
        mean,
        rate,
        slots=slots,
        slo_s=slo_s,
        quantile=quantile,
        min_replicas=max(min_replicas, 1),
        max_replicas=max_replicas,
    )
    desired = 0 if min_replicas == 0 and rate == 0.0 else p.desired_replicas
    p = type(p)(desired, p.forecast_load, p.in_flight, p.backlog_s)
    set_gauges(service.metrics.scaling, served_model, dev, rate, mean, p)
    return ScalingAnswer(
        served_model=served_model,
        device=dev,
        model_version=versions[0],
        desired_replicas=p.desired_replicas,
        forecast_load=p.forecast_load,
        arrival_rate=rate,
        window_s=window_s,
        mean_work_s=mean,
        p95_work_s=float(rows[0][GRID.index(0.95)]),
        in_flight=p.in_flight,
        backlog_s=p.backlog_s,
    )


def _check_bounds(min_replicas: int, max_replicas: int) -> None:
    """Reject ``min_replicas > max_replicas``.

    Raises:
        HTTPException: 422 naming the ``min_replicas`` query parameter.
    """
    if min_replicas > max_replicas:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[
                {
                    "loc": ["query", "min_replicas"],
                    "msg": f"min_replicas ({min_replicas}) exceeds max_replicas ({max_replicas})",
                    "type": "value_error",
                }
            ],
        )


def _device(service: ServiceState, served_model: str, device: str | None) -> str:
    """``device``, or the first device the loaded predictor of ``served_model`` knows.

    Raises:
        HTTPException: 404 for a served model with no loaded champion (known ones named).
    """
    loaded = service.models.get(served_model)
    if loaded is None:
        known = ", ".join(service.models.names()) or "none (no champion is loaded yet)"
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"unknown served model: {served_model}; known: {known}",
        )
    return device or (loaded.predictor.spec.devices or ("unknown",))[0]
