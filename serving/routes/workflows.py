"""``POST /v1/forecasts/workflow``: how long will this agentic task (still) take?

The answer composes distributions (see ``docs/workflows.md``): the task's call-count
law from its text and served model, each future call's latency from the per-call
predictor at the endpoint's current speed, and tool times, by Monte Carlo with common
random numbers (1,000 samples drawn once at start). Quantiles are seconds (times) and
calls (count).

The model is the newest workflow bundle under ``<home>/workflows`` (written by
``tailcast train-workflows``), loaded when the service starts; without one the route
answers 503.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core import MAX_PROMPT_CHARS
from serving._forecast import decimal_key
from serving._openapi import INVALID_BODY
from serving.deps import EndpointsDep, WorkflowsDep

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["forecasts"])

Level = Annotated[float, Field(gt=0.0, lt=1.0, allow_inf_nan=False, strict=True)]
DEFAULT_LEVELS: tuple[float, ...] = (0.1, 0.5, 0.9, 0.95, 0.99)


class WorkflowForecastRequest(BaseModel):
    """An agentic task to forecast.

    Attributes:
        task_text: The task statement (the first user message).
        served_model: The model the agent calls.
        device: Where its calls go (device type or endpoint).
        steps_done: LLM calls that have returned so far; the task has not finished.
        elapsed_s: Seconds since the first call returned, if known (the total is then
            elapsed + remaining, exactly).
        pending_command: The command of the last returned call (its tool runs now).
        commands: Commands of the returned calls ``0, 1, ...`` in order (``null`` where
            unknown; at most ``steps_done``): a wrap-up command (``git diff``,
            ``patch.txt``) switches the call count to the wrap-up law.
        latencies_s: Latencies (seconds) of the returned calls in order (``null`` where
            unknown; at most ``steps_done``); used when the bundle conditions on the
            task's pace (``spec.pace``, off by default).
        quantiles: Levels to answer, each in (0, 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_text: Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]
    served_model: Annotated[str, Field(min_length=1, max_length=256)]
    device: Annotated[str, Field(min_length=1, max_length=256)]
    steps_done: Annotated[int, Field(ge=0, le=100_000, strict=True)] = 0
    elapsed_s: Annotated[float, Field(ge=0.0, allow_inf_nan=False, strict=True)] | None = None
    pending_command: Annotated[str, Field(max_length=100_000)] | None = None
    commands: (
        Annotated[list[Annotated[str, Field(max_length=100_000)] | None], Field(max_length=100_000)]
        | None
    ) = None
    latencies_s: (
        Annotated[
            list[Annotated[float, Field(ge=0.0, allow_inf_nan=False, strict=True)] | None],
            Field(max_length=100_000),
        ]
        | None
    ) = None
    quantiles: Annotated[list[Level], Field(min_length=1, max_length=99)] = list(DEFAULT_LEVELS)

    @model_validator(mode="after")
    def _elapsed_needs_a_start(self) -> WorkflowForecastRequest:
        if self.elapsed_s is not None and self.steps_done == 0:
            raise ValueError("elapsed_s needs steps_done >= 1 (time runs from the first call)")
        for name in ("commands", "latencies_s"):
            given = getattr(self, name)
            if given is not None and len(given) > self.steps_done:
                raise ValueError(f"{name} has {len(given)} entries; at most steps_done")
        return self


class Distribution(BaseModel):
    """Quantiles (keyed by level) and mean."""

    quantiles: dict[str, float]
    mean: float


class WorkflowForecastResponse(BaseModel):
    """Forecasts of one task: call count (calls), remaining and total time (seconds)."""

    served_model: str
    device: str
    steps_done: int
    workflow_version: int
    call_count: Distribution
    remaining_s: Distribution
    total_s: Distribution
    samples: int


def _distribution(keys: list[str], part: dict[str, Any]) -> Distribution:
    values = [float(v) for v in part["quantiles"]]
    return Distribution(quantiles=dict(zip(keys, values, strict=True)), mean=float(part["mean"]))


@router.post(
    "/forecasts/workflow",
    responses={
        **INVALID_BODY,
        404: {"description": "A served model the workflow model has no data for."},
        503: {"description": "No workflow model is loaded."},
    },
)
async def forecast_workflow(
    body: WorkflowForecastRequest, workflows: WorkflowsDep, endpoints: EndpointsDep
) -> WorkflowForecastResponse:
    """Forecast the call count, remaining and total time of an agentic task."""
    model = workflows.model
    if body.served_model not in model.spec.served_models:
        known = ", ".join(model.spec.served_models)
        raise HTTPException(
            status_code=status.HTTP_404_NOT_FOUND,
            detail=f"unknown served model {body.served_model!r}; known: {known}",
        )
    if body.steps_done + 1 > workflows.draws.max_calls:
        raise HTTPException(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[
                {
                    "loc": ["body", "steps_done"],
                    "msg": f"at most {workflows.draws.max_calls - 1} for this workflow model",
                    "type": "value_error",
                }
            ],
        )
    levels = list(dict.fromkeys(body.quantiles))

    def run() -> dict[str, Any]:
        stats = endpoints.get(body.served_model, body.device)
        endpoint = {
            "ep_completions": float(stats.completions),
            "ep_median_tokens_per_s": stats.median_tokens_per_s,
            "ep_median_latency_s": stats.median_latency_s,
        }
        embedding = model.embed([body.task_text])[0]
        cdf = model.count_cdf(embedding, body.served_model)
        tables = model.latency(body.served_model, body.device, endpoint)
        return model.compose(
            cdf,
            tables,
            workflows.draws,
            levels,
            steps_done=body.steps_done,
            elapsed_s=body.elapsed_s,
            pending_command=body.pending_command,
            latencies_s=body.latencies_s,
            commands=body.commands,
        )

    out = await asyncio.to_thread(run)
    keys = [decimal_key(q) for q in levels]
    return WorkflowForecastResponse(
        served_model=body.served_model,
        device=body.device,
        steps_done=body.steps_done,
        workflow_version=workflows.version,
        call_count=_distribution(keys, out["call_count"]),
        remaining_s=_distribution(keys, out["remaining_s"]),
        total_s=_distribution(keys, out["total_s"]),
        samples=int(out["samples"]),
    )
