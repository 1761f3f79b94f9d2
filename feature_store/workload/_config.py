"""The workload generator's configuration: every knob, each with a sensible default.

>>> cfg = WorkloadConfig(seed=7, n_records=500)
>>> (cfg.seed, cfg.n_records, cfg.arrival_rate_per_s)
(7, 500, 2.0)
>>> sorted(cfg.model_mix)
['llama-3.1-70b', 'llama-3.1-8b']
>>> WorkloadConfig(device_mix={"tpu-v9": 1.0})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for WorkloadConfig
...
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from core.devices import device_spec
from feature_store.workload._catalog import DEFAULT_MODIFIERS, DEFAULT_PROMPT_CLASSES
from feature_store.workload._classes import Choice, PromptClass
from feature_store.workload._latency import NoiseConfig
from feature_store.workload._load import LoadConfig
from feature_store.workload._models import DEFAULT_MODELS, ServedModel
from feature_store.workload._speed import SpeedConfig

Weight = Annotated[float, Field(ge=0, allow_inf_nan=False)]

DEFAULT_DEVICE_MIX: dict[str, float] = {
    "h100-sxm": 0.22,
    "a100-80gb": 0.18,
    "a100-40gb": 0.08,
    "h100-pcie": 0.06,
    "h200": 0.10,
    "l40s": 0.10,
    "l4": 0.08,
    "a10g": 0.08,
    "mi300x": 0.10,
}
"""Share of workflows per device type. ``gh200`` is left out on purpose: a device with
specs but no records, to evaluate forecasts for an unseen device."""


class WorkloadConfig(BaseModel):
    """Everything that shapes a generated workload.

    Attributes:
        seed: Random seed; the same config always gives the same table.
        n_records: Number of records (calls) to generate.
        start: Timezone-aware time of the first workflow arrival.
        arrival_rate_per_s: Mean rate of submitted calls, calls/s (the time span is
            ``n_records / arrival_rate_per_s``, modulated by the daily cycle).
        served_models: The models that can serve requests.
        model_mix: Share of workflows per served model name.
        device_mix: Share of workflows per device name (:data:`core.devices.DEVICES`,
            aliases accepted); a model only runs on devices that hold its weights.
        prompt_classes: The request kinds (wording, lengths, session shape).
        modifiers: Verbosity sentences appended to prompts, with length factors.
        modifier_probability: Chance a prompt of a class that allows it gets one.
        max_items: Largest ``{n}`` (requested item count); ``n`` is uniform on
            ``2..max_items``.
        chars_per_token: Characters per token of prompt text (tokens =
            ``ceil(len(text) / chars_per_token)``).
        words_per_token: Words per token, to state context sizes in words.
        max_output_tokens: Cap on output length, tokens.
        speed: Device-speed calibration.
        load: Load-curve shape.
        noise: Latency noise, queueing and prefix-cache parameters.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    n_records: Annotated[int, Field(ge=1, le=100_000_000)] = 10_000
    start: AwareDatetime = datetime(2025, 3, 3, 8, tzinfo=UTC)
    arrival_rate_per_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 2.0
    served_models: Annotated[tuple[ServedModel, ...], Field(min_length=1)] = DEFAULT_MODELS
    model_mix: dict[str, Weight] = Field(
        default_factory=lambda: {"llama-3.1-8b": 0.6, "llama-3.1-70b": 0.4}
    )
    device_mix: dict[str, Weight] = Field(default_factory=lambda: dict(DEFAULT_DEVICE_MIX))
    prompt_classes: Annotated[tuple[PromptClass, ...], Field(min_length=1)] = DEFAULT_PROMPT_CLASSES
    modifiers: Annotated[tuple[Choice, ...], Field(min_length=1)] = DEFAULT_MODIFIERS
    modifier_probability: Annotated[float, Field(ge=0, le=1)] = 0.45
    max_items: Annotated[int, Field(ge=2, le=100)] = 12
    chars_per_token: Annotated[float, Field(gt=0, le=100)] = 4.0
    words_per_token: Annotated[float, Field(gt=0, le=10)] = 0.75
    max_output_tokens: Annotated[int, Field(ge=1)] = 8192
    speed: SpeedConfig = Field(default_factory=SpeedConfig)
    load: LoadConfig = Field(default_factory=LoadConfig)
    noise: NoiseConfig = Field(default_factory=NoiseConfig)

    @field_validator("device_mix")
    @classmethod
    def _catalog_names(cls, mix: dict[str, float]) -> dict[str, float]:
        normalized: dict[str, float] = {}
        for name, weight in mix.items():
            try:
                key = device_spec(name).name
            except KeyError as exc:
                raise ValueError(str(exc)) from None
            normalized[key] = normalized.get(key, 0.0) + weight
        return normalized

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        models = [m.name for m in self.served_models]
        classes = [c.name for c in self.prompt_classes]
        for kind, names in (("served model", models), ("prompt class", classes)):
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate {kind} names: {names}")
        unknown = sorted(set(self.model_mix) - set(models))
        if unknown:
            raise ValueError(f"model_mix names unknown models {unknown}; served: {models}")
        if not any(self.model_mix.get(m, 0) > 0 for m in models):
            raise ValueError("model_mix gives no served model a positive share")
        if not any(w > 0 for w in self.device_mix.values()):
            raise ValueError("device_mix gives no device a positive share")
        return self
