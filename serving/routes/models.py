"""``GET /v1/models`` and ``POST /v1/models/reload``: what is served, from which version."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from serving.deps import ConfigDep, ModelsDep, PollerDep, RequireToken
from serving.schemas import ModelInfo, ModelsResponse, VersionInfo

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models")
async def list_models(models: ModelsDep, poller: PollerDep, config: ConfigDep) -> ModelsResponse:
    """Served models with their loaded version and load time, and the registry's versions.

    Versions and aliases come from the registry when it answers within the configured
    timeout; otherwise aliases are those seen when the model was loaded.
    """
    return await _models_response(models, poller, config.registry_timeout_s)


@router.post(
    "/models/reload",
    dependencies=[RequireToken],
    responses={
        401: {"description": "Missing or wrong bearer token (when one is configured)."},
        503: {
            "model": ModelsResponse,
            "description": "The registry did not answer or failed: the loaded models keep "
            "serving; `registry_error` says why.",
        },
    },
)
async def reload_models(
    models: ModelsDep, poller: PollerDep, config: ConfigDep, response: Response
) -> ModelsResponse:
    """Poll the registry now (load and swap any new champion), then list the models.

    Answers within ``registry_poll_timeout_s`` (plus a load of a new champion) even
    when the registry hangs: 503 with the reason in ``registry_error`` when the poll
    failed or the registry did not answer in time.
    """
    polled = await poller.poll_now()
    if polled.reachable is False:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return await _models_response(models, poller, config.registry_timeout_s)


async def _models_response(
    models: ModelsDep, poller: PollerDep, timeout_s: float
) -> ModelsResponse:
    from_registry, error = await poller.registry_versions(timeout_s)
    loaded = models.snapshot()
    errors = poller.model_errors
    out: list[ModelInfo] = []
    for name in poller.served_models():
        model = loaded.get(name)
        versions = from_registry.get(name, [])
        if versions:
            aliases = {a: v.version for v in versions for a in v.aliases}
        elif model is not None:
            aliases = dict.fromkeys(model.version.aliases, model.version.version)
        else:
            aliases = {}
        out.append(
            ModelInfo(
                served_model=name,
                registered_name=poller.registered_name(name),
                loaded_version=None if model is None else model.version.version,
                loaded_at=None if model is None else model.loaded_at,
                target=None if model is None else model.predictor.spec.target,
                levels=[] if model is None else list(model.predictor.spec.levels),
                aliases=dict(sorted(aliases.items())),
                versions=[
                    VersionInfo(
                        version=v.version,
                        aliases=list(v.aliases),
                        created_at=v.created_at,
                        mean_pinball=v.mean_pinball,
                        trigger=v.trigger,
                        outcome=v.outcome,
                        outcome_detail=v.outcome_detail,
                    )
                    for v in versions
                ],
                last_error=errors.get(name),
            )
        )
    return ModelsResponse(models=out, registry_error=error)
