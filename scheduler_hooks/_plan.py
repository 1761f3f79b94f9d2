"""Replicas for a traffic rate, from the ``forecast`` scaler over one request's work forecast.

Shared by the KEDA/HPA endpoint (``GET /v1/scaling/{served_model}``) and the Ray Serve
autoscaling policy: both know a rate (requests per second) and a forecast of one
request's work (quantiles, seconds), not the replicas' queues. :func:`plan` builds the
scaler's view from them: ``ceil(rate x mean work)`` requests in flight (Little's law,
at most :data:`MAX_IN_FLIGHT`) queued on ``slots``, and asks the ``forecast`` scaler
(:class:`~scheduler_hooks.scaling.ForecastScaler`, without cooldown: the caller's
autoscaler has its own stabilisation) for ``max(load need, backlog need)`` replicas.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from scheduler_hooks._book import ForecastBook
from scheduler_hooks._state import ReplicaState
from scheduler_hooks.scaling import ScalingView, make_scaler

F64 = npt.NDArray[np.float64]

#: Requests in flight modelled by the backlog term (more changes nothing but cost).
MAX_IN_FLIGHT = 256


@dataclass(frozen=True, slots=True)
class ScalingPlan:
    """What the forecast scaler wants.

    Attributes:
        desired_replicas: Replicas (clipped to ``[min_replicas, max_replicas]``).
        forecast_load: Busy replicas the forecast work needs (rate x mean work / slots).
        in_flight: Requests in flight by Little's law (rate x mean work).
        backlog_s: The ``quantile`` of the work of ``ceil(in_flight)`` requests (at most
            :data:`MAX_IN_FLIGHT`), seconds of service.
    """

    desired_replicas: int
    forecast_load: float
    in_flight: float
    backlog_s: float


def plan(
    levels: Sequence[float],
    quantiles: F64,
    mean_work_s: float,
    arrival_rate: float,
    *,
    slots: int,
    slo_s: float,
    quantile: float,
    min_replicas: int,
    max_replicas: int,
    samples: int = 256,
) -> ScalingPlan:
    """Replicas for ``arrival_rate`` requests/s whose work has quantiles ``quantiles`` ``(K,)``.

    >>> p = plan([0.1, 0.5, 0.9], np.array([1.0, 2.0, 4.0]), 2.3, 4.0, slots=2, slo_s=30.0,
    ...          quantile=0.95, min_replicas=1, max_replicas=64)
    >>> round(p.forecast_load, 2), round(p.in_flight, 1), p.desired_replicas > p.forecast_load
    (4.6, 9.2, True)
    """
    row = np.asarray(quantiles, dtype=np.float64)[None, None, :]
    book = ForecastBook(levels, lambda ids: np.repeat(row, len(ids), axis=0), samples, seed=0)
    in_flight = arrival_rate * mean_work_s
    n = min(math.ceil(in_flight), MAX_IN_FLIGHT)
    queue = deque(range(1, n + 1))
    view = ScalingView(
        now=0.0,
        replicas=[ReplicaState(0, slots=slots, queue=queue)],
        pending=0,
        arrival_rate=arrival_rate,
        slots=slots,
        device=0,
        book=book,
        recent=[0],
    )
    scaler = make_scaler(
        "forecast",
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        cooldown_s=0.0,
        slo_s=slo_s,
        quantile=quantile,
    )
    total = np.sum([book.samples(q)[0] for q in queue], axis=0) if n else np.zeros(samples)
    return ScalingPlan(
        desired_replicas=scaler.desired(view),
        forecast_load=arrival_rate * mean_work_s / slots,
        in_flight=in_flight,
        backlog_s=float(np.quantile(total, quantile)) if n else 0.0,
    )
