"""Starting a service's parts: the store, the registry poller, the batchers.

:func:`start_service` builds the :class:`ServiceState` the app's lifespan stores; the
lifespan (``serving.app``) owns the order of startup and shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from core import Settings, TailcastError
from feature_store import RecordStore, open_store
from serving._batcher import MicroBatcher
from serving._calibration import ServedCalibration
from serving._endpoint_cache import EndpointStatsCache
from serving._forecast import forecast_batch
from serving._ingest import completion_writer
from serving._metrics import ServiceMetrics
from serving._models import ModelTable
from serving._poller import ModelPoller
from serving._state import ServiceState
from serving.compat._service import LlmdPredictor
from serving.config import ServingConfig
from serving.schemas import ForecastRequest

if TYPE_CHECKING:
    from registry import MLflowRegistry

logger = logging.getLogger(__name__)


async def start_service(
    settings: Settings,
    config: ServingConfig,
    service_metrics: ServiceMetrics,
    store: RecordStore | None,
    registry: MLflowRegistry | None,
    served_models: Sequence[str] | None,
    poll_interval_s: float,
) -> ServiceState:
    """Open the store and start polling the registry (see ``load_before_serving``).

    Raises:
        TailcastError: The feature store cannot be opened (the start fails).
    """
    owns_store = store is None
    if store is None:
        store = await _open_store(settings)
    table = ModelTable()
    poller = ModelPoller(
        table,
        service_metrics,
        registry=registry,
        factory=_connector(settings, config),
        served_models=served_models,
        interval_s=poll_interval_s,
        timeout_s=config.registry_poll_timeout_s,
    )
    if config.load_before_serving:
        await _first_poll(poller, table)
    poller.start(poll_first=not config.load_before_serving)
    _limit_blas_threads(config.blas_threads)
    sys.setswitchinterval(config.switch_interval_s)
    endpoints = EndpointStatsCache(store, config.endpoint_stats_ttl_s, config.endpoint_window)
    calibration = ServedCalibration(
        store, enabled=config.adaptive_calibration, refresh_s=config.calibration_refresh_s
    )

    def run_forecasts(context: Any, items: list[ForecastRequest]) -> list[dict[str, Any]]:
        loaded, levels, cdf_at = context
        return forecast_batch(loaded, items, levels, cdf_at, endpoints.get, calibration)

    return ServiceState(
        settings=settings,
        config=config,
        store=store,
        owns_store=owns_store,
        models=table,
        poller=poller,
        endpoints=endpoints,
        metrics=service_metrics,
        completions=completion_writer(store, config.max_batch_items, config.completion_linger_s),
        forecaster=MicroBatcher(
            run_forecasts,
            config.max_batch_items,
            name="forecasts",
            inline_items=config.inline_batch_items,
        ),
        llmd=LlmdPredictor(
            table,
            config.llmd_served_model,
            config.llmd_quantile,
            endpoints.get,
            config.max_batch_items,
            calibration,
        ),
        calibration=calibration,
    )


async def _open_store(settings: Settings) -> RecordStore:
    """Open the configured store (off the event loop), not brokered: the service brokers it.

    Raises:
        TailcastError: It cannot be opened (logged; the start fails).
    """
    try:
        return await asyncio.to_thread(lambda: open_store(settings, brokered=False))
    except TailcastError as exc:
        logger.error("tailcast cannot start: %s", exc)
        raise


async def _first_poll(poller: ModelPoller, table: ModelTable) -> None:
    """Load the champions before serving; warn when none could be loaded."""
    await poller.poll_now()
    if not table.names():
        logger.warning(
            "no champion loaded yet: %s",
            poller.status.last_error or "no served model has a 'champion' alias",
        )


def _connector(settings: Settings, config: ServingConfig) -> Callable[[], MLflowRegistry]:
    """Builds the registry of ``settings`` with ``config``'s limits (in a poll thread)."""
    tracking_uri = settings.mlflow_tracking_uri
    assert tracking_uri is not None  # filled in by Settings' validator

    def connect() -> MLflowRegistry:
        from registry import MLflowRegistry, bound_http_calls

        if config.mlflow_http_timeout_s is not None:
            bound_http_calls(config.mlflow_http_timeout_s, config.mlflow_http_retries)
        return MLflowRegistry(tracking_uri, connect_timeout_s=config.registry_connect_timeout_s)

    return connect


def _limit_blas_threads(threads: int) -> None:
    """Cap BLAS threads: the network's small matmuls only lose to thread hand-offs."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - installed with scikit-learn
        logger.warning("threadpoolctl missing: BLAS threads left at the library default")
        return
    threadpool_limits(limits=threads, user_api="blas")
