"""Request and response bodies of llm-d's latency-predictor sidecars, field for field.

Mirrors ``prediction/prediction_server.py`` and ``training/training_server.py`` of
llm-d/llm-d-latency-predictor: the same field names, bounds, defaults and response
shapes, so llm-d's router and its Go client talk to tailcast unchanged. Units are
llm-d's: milliseconds for latencies, fractions in [0, 1] for ``kv_cache_percentage``
and ``prefix_cache_score``, tokens for counts. Unlike llm-d's lax pydantic models,
numbers are strict (``true`` is no count, NaN no fraction) and counts stop at
:data:`core.MAX_COUNT`, so every value a body carries is one tailcast can hold. No
llm-d body carries a prompt (``core.MAX_PROMPT_CHARS`` has nothing to bound here).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from serving.schemas import Count

Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)]
Millis = Annotated[float, Field(ge=0.0, allow_inf_nan=False, strict=True)]

#: Most requests in one bulk call (llm-d's limit).
MAX_BULK = 10_000
#: ``model_type`` tailcast reports. llm-d's clients know ``bayesian_ridge`` (they then
#: predict locally from ``/metrics`` coefficients), ``xgboost`` (they may fetch trees and
#: predict locally) and ``lightgbm`` (they always call ``/predict/bulk/strict``); only
#: the last keeps every prediction on tailcast's own predictor.
MODEL_TYPE = "lightgbm"
#: ``objective_type``: tailcast answers quantiles of a full distribution.
OBJECTIVE_TYPE = "quantile"


class PodState(BaseModel):
    """The pod's state when a request is placed: the fields llm-d's requests share.

    Attributes:
        kv_cache_percentage: KV-cache utilisation of the pod, in [0, 1].
        input_token_length: Prompt length, tokens.
        num_request_waiting: Requests queued on the pod.
        num_request_running: Requests running on the pod.
        num_tokens_generated: Tokens generated so far (0 before the first).
        prefix_cache_score: Fraction of the prompt expected from the prefix cache.
        pod_type: ``prefill``, ``decode`` or ``""`` (monolithic); tailcast's device.
        prefill_tokens_in_flight: Prompt tokens being prefilled on the pod.
        decode_tokens_in_flight: Tokens being decoded on the pod.
    """

    kv_cache_percentage: Fraction
    input_token_length: Count
    num_request_waiting: Count
    num_request_running: Count
    num_tokens_generated: Count
    prefix_cache_score: Fraction
    pod_type: str | None = Field(
        default="", description="Pod type: 'prefill', 'decode', or '' for monolithic"
    )
    prefill_tokens_in_flight: Count = 0
    decode_tokens_in_flight: Count = 0


class PredictionRequest(PodState):
    """One request about to be placed on a pod (llm-d ``PredictionRequest``).

    Attributes:
        encoder_matched_size: Encoder cache matched size (multimodal).
        encoder_input_size: Encoder input size (multimodal).
    """

    encoder_matched_size: Count = 0
    encoder_input_size: Count = 0


class PredictionResponse(BaseModel):
    """Predicted TTFT and TPOT at the service's quantile (llm-d ``PredictionResponse``)."""

    ttft_ms: float = Field(description="Predicted TTFT in ms at `quantile`")
    tpot_ms: float = Field(description="Predicted TPOT in ms at `quantile`")
    predicted_at: datetime
    model_type: str
    objective_type: str
    quantile: float
    last_model_load: datetime | None


class BulkPredictionRequest(BaseModel):
    """Many requests (1 to 10,000) predicted in one call."""

    requests: list[PredictionRequest] = Field(min_length=1, max_length=MAX_BULK)


class LenientBulkRequest(BaseModel):
    """``/predict/bulk`` body: items are validated one by one, not as a whole."""

    requests: list[Any] = Field(min_length=1, max_length=MAX_BULK)


class BulkPredictionResponse(BaseModel):
    """``/predict/bulk/strict`` answer: every request was predicted."""

    predictions: list[PredictionResponse]
    total_requests: int
    successful_predictions: int
    failed_predictions: int
    processing_time_ms: float


class BulkPredictionError(BaseModel):
    """One ``/predict/bulk`` item that was not predicted.

    Attributes:
        index: 0-based position in ``requests``.
        error: What is wrong (field path and reason).
        request: The item as sent.
    """

    index: int
    error: str
    request: Any


class BulkPredictionResponseWithErrors(BaseModel):
    """``/predict/bulk`` answer: valid items predicted, invalid ones ``null`` + an error."""

    predictions: list[PredictionResponse | None]
    errors: list[BulkPredictionError]
    total_requests: int
    successful_predictions: int
    failed_predictions: int
    processing_time_ms: float


class StatusResponse(BaseModel):
    """``GET /status`` (llm-d ``StatusResponse``)."""

    is_ready: bool
    model_type: str
    objective_type: str
    quantile: float
    last_model_load: datetime | None
    training_server_url: str
    models_exist: dict[str, bool]
    ensemble_active: bool = False


class ReloadResponse(BaseModel):
    """``POST /reload``: what the registry poll found."""

    synced: bool
    loaded: bool
    is_ready: bool
    model_type: str
    objective_type: str
    quantile: float
    last_load_time: datetime | None


class TrainingEntry(PodState):
    """One observed request (llm-d training server ``TrainingEntry``).

    Attributes:
        actual_ttft_ms: Observed time to first token, ms.
        actual_tpot_ms: Observed time per output token, ms.
        timestamp: When it was observed (default: arrival); part of the idempotency key.
    """

    actual_ttft_ms: Millis
    actual_tpot_ms: Millis
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))


class BulkTrainingRequest(BaseModel):
    """``POST /add_training_data_bulk`` body."""

    entries: list[TrainingEntry] = Field(max_length=MAX_BULK)


class TrainingAccepted(BaseModel):
    """``202`` answer: llm-d's ``message`` plus what the store did (all durable).

    Attributes:
        message: ``Accepted N training samples.``
        stored: Samples newly stored.
        duplicates: Samples already stored (a retried batch).
    """

    message: str
    stored: int
    duplicates: int


class FlushRequest(BaseModel):
    """``POST /flush`` body (llm-d ``FlushRequest``); an empty body flushes everything.

    Attributes:
        flush_training_data: Flush the training part of the samples.
        flush_test_data: Flush the test part.
        flush_metrics: Clear evaluation scores (tailcast keeps none between rounds).
        reason: Free text, echoed back.
    """

    flush_training_data: bool = Field(default=True, strict=True)
    flush_test_data: bool = Field(default=True, strict=True)
    flush_metrics: bool = Field(default=True, strict=True)
    reason: str | None = Field(default=None, max_length=1000)


class FlushResponse(BaseModel):
    """``POST /flush`` answer (llm-d ``FlushResponse``): samples flushed per part."""

    success: bool
    flushed_at: datetime
    reason: str | None = None
    ttft_training_samples_flushed: int
    tpot_training_samples_flushed: int
    ttft_test_samples_flushed: int
    tpot_test_samples_flushed: int
    metrics_cleared: bool
    message: str
