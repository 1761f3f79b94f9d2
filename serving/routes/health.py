"""``GET /healthz`` (liveness) and ``GET /readyz`` (a champion is loaded, and which kind)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status

from serving.deps import ConfigDep, ModelsDep, PollerDep
from serving.schemas import Health, ModelReadiness, Readiness, RegistryStatusInfo

router = APIRouter(tags=["health"])


def _kind(tag: str | None) -> Literal["fallback", "trained"]:
    return "fallback" if tag == "fallback" else "trained"


@router.get("/healthz")
async def healthz() -> Health:
    """Liveness: the process answers (always 200)."""
    return Health()


@router.get(
    "/readyz",
    responses={503: {"model": Readiness, "description": "No champion is loaded yet."}},
)
async def readyz(
    models: ModelsDep, poller: PollerDep, config: ConfigDep, response: Response
) -> Readiness:
    """Readiness: 200 once at least one champion is loaded, else 503; detail per model."""
    loaded = models.snapshot()
    errors = poller.model_errors
    detail = {
        name: ModelReadiness(
            loaded_version=None if name not in loaded else loaded[name].version.version,
            loaded_at=None if name not in loaded else loaded[name].loaded_at,
            last_error=errors.get(name),
            kind=None if name not in loaded else _kind(loaded[name].version.kind),
        )
        for name in poller.served_models()
    }
    s = poller.status
    ready = bool(loaded)
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(
        status="ready" if ready else "not_ready",
        models=detail,
        registry=RegistryStatusInfo(
            reachable=s.reachable,
            last_poll_at=s.last_poll_at,
            last_error=s.last_error,
            last_error_at=s.last_error_at,
            poll_interval_s=poller.interval_s,
        ),
        quantile=config.llmd_quantile,
    )
