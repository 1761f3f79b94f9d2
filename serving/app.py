"""The application factory: ``create_app(settings)`` -> a FastAPI app with a lifespan.

The lifespan opens the feature store, connects to the registry, loads each served
model's ``champion`` and starts the poller that swaps in new champions; shutdown
undoes it in reverse. A service that opened a DuckDB store file itself brokers it: it
advertises its URL in ``<store file>.broker.json`` while it runs, so other processes
reach the store through ``/v1/store`` (:class:`feature_store.RemoteStore`). OpenAPI
docs are at ``/docs`` and ``/redoc``, their assets served by tailcast (no CDN).

Run it with uvicorn, e.g.
``uvicorn --factory "serving.app:app_from_environment" --host 127.0.0.1 --port 8000``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING

from fastapi import FastAPI

from core import Settings
from core.drift import DriftEvent
from feature_store import BrokerInfo, DuckDBStore, RecordStore, advertise, withdraw
from serving._docs import install_docs
from serving._drift import start_drift, stop_drift
from serving._drift_metrics import DriftCollector
from serving._fast_path import ServiceAPI
from serving._metrics import ServiceMetrics
from serving._openapi import install_schemas
from serving._startup import start_service
from serving._state import ServiceHook, ServiceState
from serving._store_locks import leases_for
from serving._workflows import load_workflows
from serving.compat import router as llmd_router
from serving.compat.schemas import (
    BulkPredictionRequest,
    BulkTrainingRequest,
    LenientBulkRequest,
    PredictionRequest,
)
from serving.config import ServingConfig
from serving.routes import aibrix, completions, forecasts, health, metrics, models, scaling, traces
from serving.routes import drift as drift_routes
from serving.routes import store as store_routes
from serving.routes import workflows as workflow_routes
from serving.schemas import ForecastsRequest

if TYPE_CHECKING:
    from registry import MLflowRegistry

logger = logging.getLogger(__name__)

DESCRIPTION = (
    "Distributional latency forecasts for LLM routers: quantiles, means and CDFs in "
    "seconds for requests about to be placed, and the observed outcomes fed back."
)


def create_app(
    settings: Settings,
    *,
    store: RecordStore | None = None,
    registry: MLflowRegistry | None = None,
    served_models: Sequence[str] | None = None,
    poll_interval_s: float = 30.0,
    config: ServingConfig | None = None,
    hooks: Sequence[ServiceHook] = (),
    on_retrain: Callable[[str, DriftEvent], None] | None = None,
    public_url: str | None = None,
) -> FastAPI:
    """Build the prediction service.

    Args:
        settings: tailcast settings (store path, registry URI, API token).
        store: The feature store to use (the caller keeps ownership); default: open
            ``settings.resolved_store_path`` at startup and close it at shutdown.
        registry: The model registry; default: ``settings.mlflow_tracking_uri``.
        served_models: Served models to serve; default: every ``tailcast-*``
            registered model (rediscovered on every poll).
        poll_interval_s: Seconds between checks of the ``champion`` aliases.
        config: Service limits and cache settings.
        hooks: Background work to start after the models are loaded and stop at
            shutdown (``tailcast serve`` passes the llm-d retrain loop).
        on_retrain: Called as ``on_retrain(served_model, event)`` from the drift
            monitor's worker thread when a drift alarm's retraining request passes the
            debouncer; it must return quickly (``tailcast serve`` passes
            ``pipelines.drift_trigger.drift_trigger``, which starts a background job).
        public_url: The URL other local processes reach the service at, advertised in
            the broker file of a DuckDB store the service opens itself; default
            ``http://<settings.host>:<settings.port>`` (``tailcast serve`` passes the
            address it bound).

    Returns:
        The app; models are loaded when its lifespan starts.

    Raises:
        ValueError: If ``poll_interval_s`` is not positive.
    """
    if poll_interval_s <= 0:
        raise ValueError(f"poll interval must be > 0 seconds (got {poll_interval_s})")
    cfg = config or ServingConfig()
    service_metrics = ServiceMetrics()
    start = partial(
        start_service,
        settings,
        cfg,
        service_metrics,
        store,
        registry,
        served_models,
        poll_interval_s,
    )
    app = ServiceAPI(
        metrics=service_metrics,
        max_body_bytes=cfg.max_body_bytes,
        title="tailcast",
        summary="Latency forecasts for LLM routers.",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=_lifespan(start, hooks, on_retrain, public_url),
        docs_url=None,
        redoc_url=None,
    )
    _install(app, cfg, service_metrics)
    return app


def _lifespan(
    start: Callable[[], Awaitable[ServiceState]],
    hooks: Sequence[ServiceHook],
    on_retrain: Callable[[str, DriftEvent], None] | None,
    public_url: str | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: start the service's parts, then stop them in reverse.

    Args:
        start: Builds the service state (store, poller, batchers).
        hooks: Background work started last and stopped first.
        on_retrain: The drift monitor's retraining callback (see :func:`create_app`).
        public_url: The broker URL of a store the service opens (see :func:`create_app`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await start()
        app.state.service = state
        broker = await asyncio.to_thread(_advertise, state, public_url)
        start_drift(app, on_retrain=on_retrain)
        app.state.workflows = await asyncio.to_thread(load_workflows, state.settings)
        for hook in hooks:
            await hook.start(state)
        try:
            yield
        finally:
            await _stop(app, state, broker, hooks)

    return lifespan


async def _stop(
    app: FastAPI, state: ServiceState, broker: BrokerInfo | None, hooks: Sequence[ServiceHook]
) -> None:
    """Undo the lifespan's start in reverse order (hooks first, the store last)."""
    if broker is not None:
        await asyncio.to_thread(withdraw, broker.store, broker)
    for hook in reversed(hooks):
        await hook.stop()
    await asyncio.to_thread(stop_drift, app)
    await state.poller.stop()
    state.forecaster.close()
    state.completions.close()
    state.llmd.close()
    leases_for(state.store).release_all()
    if state.owns_store:
        await asyncio.to_thread(state.store.close)


def _install(app: FastAPI, cfg: ServingConfig, service_metrics: ServiceMetrics) -> None:
    """Add the docs, the routes and schemas (the middleware is :class:`ServiceAPI`'s)."""
    install_docs(app)
    service_metrics.registry.register(DriftCollector(lambda: getattr(app.state, "drift", None)))
    for module in (forecasts, completions, traces, models, health, metrics, scaling, aibrix):
        app.include_router(module.router)
    app.include_router(workflow_routes.router)
    app.include_router(drift_routes.router)
    app.include_router(store_routes.router)
    app.include_router(llmd_router)
    install_schemas(
        app,
        [
            ForecastsRequest,
            PredictionRequest,
            BulkPredictionRequest,
            LenientBulkRequest,
            BulkTrainingRequest,
        ],
    )


def _advertise(state: ServiceState, public_url: str | None) -> BrokerInfo | None:
    """Advertise a DuckDB store file the service opened itself; what was written, if any."""
    store = state.store
    if not state.owns_store or not isinstance(store, DuckDBStore) or store.path == ":memory:":
        return None
    settings = state.settings
    url = public_url or f"http://{local_host(settings.host)}:{settings.port}"
    info = advertise(store.path, url)
    logger.info("brokering feature store %s at %s", store.path, url)
    return info


def local_host(host: str) -> str:
    """How a local client reaches a service bound to ``host`` (wildcards: loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def app_from_environment() -> FastAPI:
    """The app with :class:`core.Settings` read from the environment (for ``--factory``).

    It serves at once and bounds MLflow's HTTP calls (:meth:`ServingConfig.standalone`).
    """
    return create_app(Settings(), config=ServingConfig.standalone())
