"""Request and response bodies of the REST API.

Units: seconds for latencies (forecast quantiles, means and ``cdf_at`` points),
tokens for token counts, fractions in [0, 1] for utilisations and probabilities.
Forecast and CDF maps are keyed by the shortest decimal form of the level or point
(``"0.9"``, ``"2.5"``, ``"2"``). Numbers are strict: ``true``/``false`` or ``"12"`` are no
numbers, an integer field takes whole numbers only (``12`` or ``12.0``, as JSON Schema's
``integer`` does; never ``12.5``; up to :data:`core.MAX_COUNT`), and NaN or infinities
are refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from core import MAX_COUNT, MAX_PROMPT_CHARS

Identifier = Annotated[str, Field(min_length=1, max_length=256)]
Level = Annotated[float, Field(gt=0.0, lt=1.0, allow_inf_nan=False, strict=True)]
Seconds = Annotated[float, Field(ge=0.0, allow_inf_nan=False, strict=True)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)]


def _number(value: object) -> object:
    """Refuse booleans and text where a number belongs (pydantic's lax int takes both)."""
    if isinstance(value, bool | str | bytes):
        raise ValueError(f"expected a whole number, got {type(value).__name__}")
    return value


#: A whole number >= 0: ``12`` or ``12.0`` (JSON Schema's ``integer``), never ``true``,
#: ``"12"`` or ``12.5``.
Count = Annotated[int, BeforeValidator(_number), Field(ge=0, le=MAX_COUNT)]

DEFAULT_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)
MAX_LEVELS = 99


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- forecasts --------------------------------------------------------------------------
class RuntimeState(_Strict):
    """The replica's load when the request is about to be submitted.

    Attributes:
        num_running: Requests running on the replica.
        num_waiting: Requests queued on the replica.
        kv_cache_util: KV-cache utilisation in [0, 1].
        prefill_tokens_in_flight: Prompt tokens being prefilled on the replica.
        decode_tokens_in_flight: Tokens being decoded on the replica.
    """

    num_running: Count | None = None
    num_waiting: Count | None = None
    kv_cache_util: Fraction | None = None
    prefill_tokens_in_flight: Count | None = None
    decode_tokens_in_flight: Count | None = None


class PreviousCallState(_Strict):
    """The previous call of the same workflow, once it has completed.

    Attributes:
        output_tokens: Tokens it generated.
        latency_s: Its end-to-end latency, seconds.
    """

    output_tokens: Count | None = None
    latency_s: Seconds


class ForecastRequest(_Strict):
    """One request a router is about to place.

    Attributes:
        request_id: Caller's id, echoed in the answer.
        served_model: The model that would serve it (a key of ``GET /v1/models``).
        device: Where it would run: a device type (``h100-sxm``) or an endpoint.
        prompt: Prompt text (used for text features; never logged), at most
            :data:`core.MAX_PROMPT_CHARS` characters.
        prompt_class: Caller's class label; overrides the learned classes.
        input_tokens: Prompt length, tokens.
        cached_tokens: Prompt tokens expected from a prefix cache (<= input_tokens).
        runtime: The replica's current load.
        workflow_id: The agentic task this call belongs to.
        step: 0-based index of the call within its workflow.
        previous_call: The workflow's previous call (by step), if it completed before
            this request is placed. The model learned from it (a long answer or a slow
            call before predicts the next); omitted, the call is forecast as one with no
            completed predecessor, as a first step is.
    """

    request_id: Identifier | None = None
    served_model: Identifier
    device: Identifier
    prompt: Annotated[str, Field(max_length=MAX_PROMPT_CHARS)] | None = None
    prompt_class: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    input_tokens: Count | None = None
    cached_tokens: Count | None = None
    runtime: RuntimeState | None = None
    workflow_id: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    step: Count | None = None
    previous_call: PreviousCallState | None = None

    @model_validator(mode="after")
    def _cached_within_input(self) -> Self:
        if (
            self.cached_tokens is not None
            and self.input_tokens is not None
            and self.cached_tokens > self.input_tokens
        ):
            raise ValueError(
                f"cached_tokens must be <= input_tokens ({self.cached_tokens} > "
                f"{self.input_tokens})"
            )
        return self


class ForecastsRequest(_Strict):
    """A batch of requests to forecast.

    Attributes:
        requests: The requests (at least one; the service's batch limit applies).
        quantiles: Levels to answer, each in (0, 1); any level works, not only the
            model's grid.
        cdf_at: Latencies (seconds) at which to give P(latency <= x).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "requests": [
                        {
                            "request_id": "r-1",
                            "served_model": "deepseek-chat",
                            "device": "deepseek-api",
                            "input_tokens": 1200,
                            "runtime": {"num_running": 12, "num_waiting": 0},
                        }
                    ],
                    "quantiles": [0.5, 0.9, 0.99],
                    "cdf_at": [5.0, 30.0],
                }
            ]
        }
    )

    requests: list[ForecastRequest] = Field(min_length=1)
    quantiles: list[Level] = Field(
        default_factory=lambda: list(DEFAULT_QUANTILES), min_length=1, max_length=MAX_LEVELS
    )
    cdf_at: list[Seconds] | None = Field(default=None, min_length=1, max_length=MAX_LEVELS)


class Forecast(BaseModel):
    """The latency distribution of one request.

    Attributes:
        request_id: The caller's id (``None`` when none was given).
        served_model: The served model.
        model_version: Registry version of the predictor that answered.
        prompt_class: The caller's label, else the learned class (``none``: no class).
        quantiles: Level -> latency, seconds.
        mean: Expected latency, seconds.
        cdf: Latency (seconds) -> P(latency <= it); only when ``cdf_at`` was given.
        unknown_device: The predictor never saw this device in training: the forecast
            rests on the device's catalog figures (``core.devices``) if it has any, else
            on the other features alone. A typo in ``device`` shows here.
    """

    request_id: str | None
    served_model: str
    model_version: int
    prompt_class: str
    quantiles: dict[str, float]
    mean: float
    cdf: dict[str, float] | None = None
    unknown_device: bool = False


class ForecastsResponse(BaseModel):
    """Forecasts, in the order of the requests."""

    forecasts: list[Forecast]


# --- completions ------------------------------------------------------------------------
class CompletionsRequest(BaseModel):
    """Observed outcomes to store.

    Attributes:
        completions: Objects in the ``CompletionRecord`` shape (see ``docs/records.md``);
            each is validated on its own, and an invalid one is rejected alone.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "completions": [
                        {
                            "request_id": "r-1",
                            "served_model": "deepseek-chat",
                            "device": "deepseek-api",
                            "submitted_at": "2026-01-01T12:00:00Z",
                            "input_tokens": 1200,
                            "output_tokens": 310,
                            "latency_s": 7.4,
                        }
                    ]
                }
            ]
        },
    )

    completions: list[Any]


class CompletionRejection(BaseModel):
    """One completion that was not stored.

    Attributes:
        index: 0-based position in the batch.
        field: The field at fault, or ``None`` when the whole item is.
        reason: What is wrong.
    """

    index: int
    field: str | None
    reason: str


class CompletionsResponse(BaseModel):
    """The outcome of a completions batch (every accepted record is durable).

    Attributes:
        accepted: Records newly stored.
        duplicates: Records whose ``request_id`` was already stored (or repeated in the
            batch); nothing was written for them.
        rejected: Items that failed validation, with reasons.
        unserved_models: Served models named in this call that no loaded predictor
            serves: their records are stored (training data for a first predictor),
            but nothing forecasts them and their completions are not judged for drift.
    """

    accepted: int
    duplicates: int
    rejected: list[CompletionRejection]
    unserved_models: list[str] = Field(default_factory=list)


# --- models and health ------------------------------------------------------------------
class VersionInfo(BaseModel):
    """One registered version of a served model's predictor."""

    version: int
    aliases: list[str]
    created_at: datetime
    mean_pinball: float | None
    trigger: str | None = Field(
        default=None, description="What started the job that made it (drift, schedule...)."
    )
    outcome: str | None = Field(
        default=None, description="A retraining's verdict: `promoted` or `not promoted`."
    )
    outcome_detail: str | None = Field(
        default=None, description="Why: the held-out comparison that decided it."
    )


class ModelInfo(BaseModel):
    """A served model: what is loaded and what the registry holds.

    Attributes:
        served_model: The served model.
        registered_name: Its registered model in the registry.
        loaded_version: The version answering forecasts (``None``: none loaded yet).
        loaded_at: When it was loaded.
        target: The predicted record field (``latency_s``).
        levels: The predictor's own quantile grid.
        aliases: Alias -> version, from the registry (as at load time when the
            registry cannot be reached).
        versions: Every registered version (empty when the registry cannot be reached).
        last_error: The last failure to poll or load this model, if any.
    """

    served_model: str
    registered_name: str
    loaded_version: int | None
    loaded_at: datetime | None
    target: str | None
    levels: list[float]
    aliases: dict[str, int]
    versions: list[VersionInfo]
    last_error: str | None


class ModelsResponse(BaseModel):
    """Served models, and the registry's state."""

    models: list[ModelInfo]
    registry_error: str | None


class Health(BaseModel):
    """Liveness (llm-d's shape too)."""

    status: Literal["ok"] = "ok"
    service: str = "tailcast"


class ModelReadiness(BaseModel):
    """Readiness detail of one served model.

    Attributes:
        loaded_version: The version served (None: none loaded yet).
        loaded_at: When it was loaded.
        last_error: The last load error.
        kind: What the served version is: ``fallback`` (empirical quantiles per prompt
            class and device, served until a searched champion wins) or ``trained``.
    """

    loaded_version: int | None
    loaded_at: datetime | None
    last_error: str | None
    kind: Literal["fallback", "trained"] | None = None


class RegistryStatusInfo(BaseModel):
    """The registry as the poller last saw it.

    Attributes:
        reachable: Whether the last poll succeeded (``None`` before the first).
        last_poll_at: When the last poll finished.
        last_error: The last poll error (kept after recovery, with its time).
        last_error_at: When it happened.
        poll_interval_s: Seconds between polls.
    """

    reachable: bool | None
    last_poll_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    poll_interval_s: float


class Readiness(BaseModel):
    """Readiness: ready once at least one champion is loaded.

    ``model_type``, ``objective_type`` and ``quantile`` repeat llm-d's readiness
    fields (the level llm-d endpoints answer at), so its clients accept the answer;
    ``model_type`` is the family llm-d's clients call the server for (see the llm-d
    section of docs/serving.md for what really runs).
    """

    status: Literal["ready", "not_ready"]
    models: dict[str, ModelReadiness]
    registry: RegistryStatusInfo
    model_type: str = "lightgbm"  # what /status says (serving.compat's MODEL_TYPE)
    objective_type: str = "quantile"
    quantile: float
