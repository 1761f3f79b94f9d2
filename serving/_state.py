"""Everything one running service holds, built by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from core import Settings
from feature_store import RecordStore
from serving._batcher import MicroBatcher
from serving._calibration import ServedCalibration
from serving._endpoint_cache import EndpointStatsCache
from serving._ingest import Outcome
from serving._metrics import ServiceMetrics
from serving._models import ModelTable
from serving._poller import ModelPoller
from serving._scaling import ScalingState
from serving.config import ServingConfig
from serving.schemas import ForecastRequest

if TYPE_CHECKING:
    from serving.compat._service import LlmdPredictor


@dataclass(slots=True)
class ServiceState:
    """The live parts of the service (stored on ``app.state.service``).

    Attributes:
        settings: The tailcast settings.
        config: Service limits and cache settings.
        store: The feature store (completions are written here).
        owns_store: Whether the service opened the store (and closes it at shutdown).
        models: The served predictors.
        poller: Keeps ``models`` in step with the registry's champions.
        endpoints: Cached endpoint features.
        metrics: The service's Prometheus metrics.
        forecaster: Batches concurrent forecast calls into one predictor call each.
        completions: Stores concurrent completion calls in one transaction each.
        llmd: Answers the llm-d prediction endpoints.
        calibration: The adaptive conformal offsets forecasts are served with (the
            drift judge steps them).
        scaling: Arrival windows of ``GET /v1/scaling`` (kept across calls).
    """

    settings: Settings
    config: ServingConfig
    store: RecordStore
    owns_store: bool
    models: ModelTable
    poller: ModelPoller
    endpoints: EndpointStatsCache
    metrics: ServiceMetrics
    forecaster: MicroBatcher[ForecastRequest, dict[str, Any]]
    completions: MicroBatcher[Any, Outcome]
    llmd: LlmdPredictor
    calibration: ServedCalibration
    scaling: ScalingState = field(default_factory=ScalingState)


class ServiceHook(Protocol):
    """Background work started with the service and stopped before it (e.g. retraining)."""

    async def start(self, service: ServiceState) -> None:
        """Start (the service's parts are ready)."""

    async def stop(self) -> None:
        """Stop (before the service's parts are closed)."""
