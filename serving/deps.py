"""Dependencies of the routes, as ``Annotated`` aliases.

Every dependency is ``async`` so FastAPI runs it on the event loop (a sync one would
cost a thread-pool hop on every request).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core import Settings
from feature_store import RecordStore
from serving._batcher import MicroBatcher
from serving._drift import DriftService
from serving._endpoint_cache import EndpointStatsCache
from serving._ingest import Outcome
from serving._metrics import ServiceMetrics
from serving._models import ModelTable
from serving._poller import ModelPoller
from serving._scaling import ScalingState
from serving._state import ServiceState
from serving._workflows import WorkflowService
from serving.config import ServingConfig

_bearer = HTTPBearer(auto_error=False, description="The service's API token (settings.api_token).")


async def get_service(request: Request) -> ServiceState:
    """The running service's state (set by the lifespan)."""
    service: ServiceState = request.app.state.service
    return service


ServiceDep = Annotated[ServiceState, Depends(get_service)]


async def get_settings(service: ServiceDep) -> Settings:
    """The tailcast settings."""
    return service.settings


async def get_config(service: ServiceDep) -> ServingConfig:
    """The service limits."""
    return service.config


async def get_store(service: ServiceDep) -> RecordStore:
    """The feature store."""
    return service.store


async def get_completion_writer(service: ServiceDep) -> MicroBatcher[Any, Outcome]:
    """The group-commit writer of ``POST /v1/completions``."""
    return service.completions


async def get_models(service: ServiceDep) -> ModelTable:
    """The served predictors."""
    return service.models


async def get_poller(service: ServiceDep) -> ModelPoller:
    """The registry poller."""
    return service.poller


async def get_endpoints(service: ServiceDep) -> EndpointStatsCache:
    """The endpoint-features cache."""
    return service.endpoints


async def get_metrics(service: ServiceDep) -> ServiceMetrics:
    """The service metrics."""
    return service.metrics


async def get_scaling_state(service: ServiceDep) -> ScalingState:
    """The arrival windows of the scaling route."""
    return service.scaling


async def get_drift(request: Request) -> DriftService:
    """The running service's drift monitor.

    Raises:
        HTTPException: 503 when drift monitoring is not running.
    """
    drift: DriftService | None = getattr(request.app.state, "drift", None)
    if drift is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "drift monitoring is not running")
    return drift


async def get_workflows(request: Request) -> WorkflowService:
    """The loaded workflow bundle.

    Raises:
        HTTPException: 503 when no bundle was loaded.
    """
    service: WorkflowService | None = getattr(request.app.state, "workflows", None)
    if service is None:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="no workflow model is loaded; run `tailcast train-workflows --data DIR` "
            "and restart the service",
        )
    return service


SettingsDep = Annotated[Settings, Depends(get_settings)]
ConfigDep = Annotated[ServingConfig, Depends(get_config)]
StoreDep = Annotated[RecordStore, Depends(get_store)]
CompletionWriterDep = Annotated[MicroBatcher[Any, Outcome], Depends(get_completion_writer)]
ModelsDep = Annotated[ModelTable, Depends(get_models)]
PollerDep = Annotated[ModelPoller, Depends(get_poller)]
EndpointsDep = Annotated[EndpointStatsCache, Depends(get_endpoints)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
ScalingStateDep = Annotated[ScalingState, Depends(get_scaling_state)]
DriftDep = Annotated[DriftService, Depends(get_drift)]
WorkflowsDep = Annotated[WorkflowService, Depends(get_workflows)]


def _token_matches(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> bool:
    """Whether ``credentials`` carry the configured token (constant-time compare)."""
    if settings.api_token is None or credentials is None:
        return False
    expected = settings.api_token.get_secret_value().encode()
    return hmac.compare_digest(credentials.credentials.encode(), expected)


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def require_token(settings: SettingsDep, credentials: Credentials) -> None:
    """Check ``Authorization: Bearer <api_token>`` when a token is configured.

    Raises:
        HTTPException: 401 when the token is missing or wrong.
    """
    if settings.api_token is None:
        return
    if not _token_matches(settings, credentials):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def has_token(settings: SettingsDep, credentials: Credentials) -> bool:
    """Whether the caller presented the configured token (``False`` when none is set).

    For read routes that answer everyone but show some details (file paths) only to
    the token's holder.
    """
    return _token_matches(settings, credentials)


#: Put in a route's ``dependencies`` to require the API token.
RequireToken = Depends(require_token)
#: ``True`` for a caller holding the configured token.
HasTokenDep = Annotated[bool, Depends(has_token)]
