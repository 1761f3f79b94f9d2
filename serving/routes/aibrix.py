"""``POST /v1/aibrix/select``: AIBrix's external replica router, choosing with ``tail_aware``.

AIBrix Gateway (strategy ``external``) posts a ``ReplicaSelectionRequest``
(``routing.aibrix.ai/v1alpha1``: the model it resolved and a snapshot of candidate
pods with optional attributes and metrics) and expects a ``ReplicaSelectionResponse``
with the versioned media type within ``AIBRIX_EXTERNAL_ROUTER_TIMEOUT`` (10 ms by
default). The gateway sends no prompt, so tailcast forecasts this request's latency
on every candidate from what it has: the candidate's device type (pod label
``tailcast.io/device``), its ``runningRequests`` and ``kvCacheUsage``, and the
prompt length when the gateway passes a trusted policy attribute
``tailcast.io/input-tokens``. :func:`scheduler_hooks._select.tail_aware_choice`
then picks the candidate with the smallest P95 completion time (queue of
``runningRequests`` on ``tailcast.io/slots`` slots, default 16, plus this request).

An unknown model answers ``NoDecision`` in ``Advisory`` mode (the gateway falls back)
and, in ``Authoritative`` mode, ``Selected`` with the least-loaded candidate.
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from core import MAX_COUNT
from scheduler_hooks import tail_aware_choice
from serving._body import parse_body
from serving._scaling import GRID, forecast_rows
from serving.deps import ServiceDep
from serving.schemas import ForecastRequest, RuntimeState

router = APIRouter(prefix="/v1/aibrix", tags=["aibrix"])

API_VERSION = "routing.aibrix.ai/v1alpha1"
MEDIA_TYPE = "application/vnd.aibrix.external-routing+json;version=v1alpha1"
DEVICE_KEY = "tailcast.io/device"
SLOTS_KEY = "tailcast.io/slots"
TOKENS_KEY = "tailcast.io/input-tokens"
DEFAULT_SLOTS = 16

Ratio = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)]
Bounded = Annotated[str, Field(min_length=1, max_length=256)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class CandidateMetrics(_Lenient):
    """Gateway metrics of one pod (each optional)."""

    running_requests: Annotated[int, Field(ge=0, le=MAX_COUNT, strict=True)] | None = Field(
        None, alias="runningRequests"
    )
    engine_utilization: Ratio | None = Field(None, alias="engineUtilization")
    kv_cache_usage: Ratio | None = Field(None, alias="kvCacheUsage")


class Candidate(_Lenient):
    """One pod the gateway may route to (``namespace/pod-name``)."""

    id: Bounded
    ports: list[Annotated[int, Field(ge=1, le=65535, strict=True)]] = Field(min_length=1)
    attributes: dict[str, str] = Field(default_factory=dict)
    metrics: CandidateMetrics = Field(default_factory=CandidateMetrics)


class PolicyContext(_Lenient):
    """Trusted attributes the gateway adds."""

    attributes: dict[str, str] = Field(default_factory=dict)


class SelectionSpec(_Lenient):
    """The model already resolved, the policy mode and the candidates."""

    model: Bounded
    policy_mode: Literal["Advisory", "Authoritative"] = Field(alias="policyMode")
    policy_context: PolicyContext = Field(default_factory=PolicyContext, alias="policyContext")
    candidates: list[Candidate] = Field(min_length=1)


class RequestMetadata(_Lenient):
    """Correlation id (echoed)."""

    request_id: Bounded = Field(alias="requestId")


class ReplicaSelectionRequest(_Lenient):
    """AIBrix's ``ReplicaSelectionRequest`` (``routing.aibrix.ai/v1alpha1``)."""

    api_version: Literal["routing.aibrix.ai/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["ReplicaSelectionRequest"]
    metadata: RequestMetadata
    spec: SelectionSpec


def _answer(request_id: str, status: dict[str, object], decision_id: str | None) -> Response:
    meta: dict[str, str] = {"requestId": request_id}
    if decision_id:
        meta["decisionId"] = decision_id
    body = {
        "apiVersion": API_VERSION,
        "kind": "ReplicaSelectionResponse",
        "metadata": meta,
        "status": status,
    }
    return Response(orjson.dumps(body), media_type=MEDIA_TYPE)


def _int(text: str | None, default: int | None) -> int | None:
    try:
        return default if text is None else min(max(int(text), 0), MAX_COUNT)
    except ValueError:
        return default


@router.post(
    "/select",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {MEDIA_TYPE: {"schema": ReplicaSelectionRequest.model_json_schema()}},
        }
    },
    responses={
        200: {
            "description": "A ReplicaSelectionResponse (Selected or NoDecision).",
            "content": {MEDIA_TYPE: {}},
        },
        422: {"description": "Not a valid ReplicaSelectionRequest; `detail[*].loc` names it."},
    },
)
async def select_replica(service: ServiceDep, request: Request) -> Response:
    """Choose the candidate with the smallest predicted P95 completion time."""
    body = parse_body(ReplicaSelectionRequest, await request.body())
    spec, rid = body.spec, body.metadata.request_id
    decisions = service.metrics.scaling.decisions
    cands = spec.candidates
    loads = [c.metrics.running_requests or 0 for c in cands]
    loaded = service.models.get(spec.model)
    if loaded is None:
        if spec.policy_mode == "Advisory":
            decisions.labels(served_model=spec.model, decision="NoDecision").inc()
            return _answer(rid, {"decision": "NoDecision", "reason": "UnknownModel"}, None)
        pick, why = min(range(len(cands)), key=lambda i: (loads[i], cands[i].id)), "least-loaded"
    else:
        devices = loaded.predictor.spec.devices
        default_device = devices[0] if devices else "unknown"
        tokens = _int(spec.policy_context.attributes.get(TOKENS_KEY), None)
        items = [
            ForecastRequest(
                served_model=spec.model,
                device=c.attributes.get(DEVICE_KEY) or default_device,
                input_tokens=tokens,
                runtime=RuntimeState(
                    num_running=c.metrics.running_requests, kv_cache_util=c.metrics.kv_cache_usage
                ),
            )
            for c in cands
        ]
        _, rows, _ = await forecast_rows(service, items, GRID)
        slots = [_int(c.attributes.get(SLOTS_KEY), DEFAULT_SLOTS) or 1 for c in cands]
        pick = tail_aware_choice(GRID, rows, loads, slots)
        why = f"tail_aware-v{loaded.version.version}"
    chosen = cands[pick]
    decisions.labels(served_model=spec.model, decision="Selected").inc()
    target = {"id": chosen.id, "port": min(chosen.ports)}
    return _answer(rid, {"decision": "Selected", "target": target}, f"tailcast-{why}")
