"""State and arithmetic of the scaling hook (``GET /v1/scaling/{served_model}``) and its gauges.

Inputs, per served model:

* **arrival rate**: requests placed through tailcast per second over the last
  ``window_s`` seconds: forecast items served (``tailcast_forecasts_total``) divided
  by ``fanout`` (forecast items per placed request: 1 when a router forecasts the
  request once, the candidate count when it forecasts every candidate), plus AIBrix
  decisions (one per placed request). The service keeps, per served model, a ring of
  ``(time, cumulative count)`` readings at least one second apart within the window
  (at most ``window_s + 1`` entries), so a call is O(1) in the traffic.
* **work per request**: the served model's predictor forecast for a typical request
  (``input_tokens`` given or unknown) on the scale-up ``device``, seconds.

From those, :func:`scheduler_hooks._plan.plan` asks the ``forecast`` scaler of
:mod:`scheduler_hooks.scaling` for the replica count: the larger of the load need
(rate x mean work over target utilisation x slots) and the backlog need (the
``quantile`` of the work in flight, ``rate x mean work`` requests by Little's law,
drained within ``slo_s`` on ``slots`` per replica).

>>> w = ArrivalWindow(window_s=60.0)
>>> w.rate(0.0, 0.0), w.rate(10.0, 50.0), w.rate(20.0, 150.0)
(0.0, 5.0, 7.5)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge

from scheduler_hooks import ScalingPlan

if TYPE_CHECKING:
    from serving._state import ServiceState

F64 = npt.NDArray[np.float64]

#: Levels the hooks ask the predictor for (Monte Carlo draws interpolate between them).
GRID: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


class ScalingGauges:
    """The scaling hook's numbers on ``/metrics`` (the last answer per served model and device).

    Attributes:
        desired_replicas: Replicas the forecast scaler wants.
        forecast_load: Busy replicas the forecast work needs (rate x mean work / slots).
        arrival_rate: Requests placed per second over the window.
        mean_work: Forecast mean work of one request, seconds.
        decisions: AIBrix replica-selection answers, by decision.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["served_model", "device"]
        self.desired_replicas = Gauge(
            "tailcast_scaling_desired_replicas",
            "Replicas the forecast scaler wants (last /v1/scaling answer).",
            labels,
            registry=registry,
        )
        self.forecast_load = Gauge(
            "tailcast_scaling_forecast_load",
            "Busy replicas the forecast work needs: rate x mean work / slots.",
            labels,
            registry=registry,
        )
        self.arrival_rate = Gauge(
            "tailcast_scaling_arrival_rate",
            "Requests placed through tailcast per second over the scaling window.",
            ["served_model"],
            registry=registry,
        )
        self.mean_work = Gauge(
            "tailcast_scaling_mean_work_seconds",
            "Forecast mean work of one request on the scale-up device, seconds.",
            labels,
            registry=registry,
        )
        self.decisions = Counter(
            "tailcast_aibrix_decisions",
            "AIBrix replica-selection answers, by served model and decision.",
            ["served_model", "decision"],
            registry=registry,
        )


class ArrivalWindow:
    """Rate of a cumulative count over a sliding window, from readings taken on demand.

    Args:
        window_s: Window length, seconds.
        min_gap_s: Readings closer than this to the previous kept one are not kept.
    """

    def __init__(self, window_s: float = 60.0, min_gap_s: float = 1.0) -> None:
        self.window_s, self.min_gap_s = window_s, min_gap_s
        self._readings: deque[tuple[float, float]] = deque()

    def rate(self, now: float, count: float) -> float:
        """Record ``count`` at ``now`` (seconds) and answer the rate per second over the window.

        The rate spans from the oldest reading kept (within the window, or the last one
        before it when none is) to now; 0 until two readings exist.
        """
        r = self._readings
        while len(r) > 1 and r[0][0] < now - self.window_s:
            r.popleft()
        if not r or now - r[-1][0] >= self.min_gap_s:
            r.append((now, count))
        t0, c0 = r[0]
        return 0.0 if now <= t0 else max(count - c0, 0.0) / (now - t0)


class ScalingState:
    """Arrival windows by (served model, window length, fanout); one per service."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, float, float], ArrivalWindow] = {}

    def window(self, served_model: str, window_s: float, fanout: float) -> ArrivalWindow:
        """The window of ``served_model`` (created on first use)."""
        key = (served_model, window_s, fanout)
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = ArrivalWindow(window_s)
        return w


def placed_count(service: ServiceState, served_model: str, fanout: float) -> float:
    """Requests placed through tailcast so far: forecast items / ``fanout`` + AIBrix decisions."""
    forecasts = decisions = 0.0
    for metric in service.metrics.forecasts.collect():
        for s in metric.samples:
            if s.name.endswith("_total") and s.labels.get("served_model") == served_model:
                forecasts += s.value
    for metric in service.metrics.scaling.decisions.collect():
        for s in metric.samples:
            if s.name.endswith("_total") and s.labels.get("served_model") == served_model:
                decisions += s.value
    return forecasts / fanout + decisions


async def forecast_rows(
    service: ServiceState, items: Sequence[Any], levels: Sequence[float] = GRID
) -> tuple[list[int], F64, F64]:
    """Forecast ``items`` (``ForecastRequest``) through the service's micro-batcher.

    Returns:
        Model versions, quantiles ``(n, K)`` at ``levels`` in seconds, and means ``(n,)``.
    """
    from serving._batcher import snapshot_key

    loaded = service.models.snapshot()
    lv = tuple(levels)
    answers = await service.forecaster.submit(
        snapshot_key(loaded, lv, None), list(items), (loaded, lv, None)
    )
    values = np.array([[a["quantiles"][k] for k in a["quantiles"]] for a in answers])
    means = np.array([a["mean"] for a in answers], dtype=np.float64)
    return [int(a["model_version"]) for a in answers], values, means


def set_gauges(
    gauges: ScalingGauges, served_model: str, device: str, rate: float, mean: float, p: ScalingPlan
) -> None:
    """Publish one answer on the gauges."""
    gauges.arrival_rate.labels(served_model=served_model).set(rate)
    gauges.desired_replicas.labels(served_model=served_model, device=device).set(p.desired_replicas)
    gauges.forecast_load.labels(served_model=served_model, device=device).set(p.forecast_load)
    gauges.mean_work.labels(served_model=served_model, device=device).set(mean)
