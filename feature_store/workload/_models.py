"""Served models: the few size figures the device-speed model needs.

>>> LLAMA_8B.weight_bytes / 1e9
16.06
>>> LLAMA_70B.kv_bytes_per_token  # 2 (K, V) x 80 layers x 8 KV heads x 128 dims x 2 bytes
327680
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class ServedModel(BaseModel):
    """A served LLM, described by what drives its speed.

    Attributes:
        name: The ``served_model`` value written to the records.
        params_billion: Parameter count, billions.
        bytes_per_param: Bytes per weight as served (2 for BF16/FP16, 1 for FP8).
        kv_bytes_per_token: KV-cache bytes per token of context (2 x layers x KV heads
            x head dim x bytes per value).
        context_window_tokens: Longest prompt the model accepts, tokens.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=256)]
    params_billion: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    bytes_per_param: Annotated[float, Field(gt=0, le=4)] = 2.0
    kv_bytes_per_token: Annotated[int, Field(gt=0)]
    context_window_tokens: Annotated[int, Field(gt=0)] = 131_072

    @property
    def weight_bytes(self) -> float:
        """Bytes of weights read once per decode step, bytes."""
        return self.params_billion * 1e9 * self.bytes_per_param

    @property
    def flops_per_token(self) -> float:
        """Forward-pass FLOPs per token (2 x parameters; attention ignored), FLOP."""
        return 2.0 * self.params_billion * 1e9


# Llama 3.1 model cards (meta-llama on Hugging Face): 8.03B parameters, 32 layers, 8 KV
# heads of 128 dims; 70.6B parameters, 80 layers, 8 KV heads of 128 dims; 128k context.
LLAMA_8B = ServedModel(
    name="llama-3.1-8b", params_billion=8.03, kv_bytes_per_token=2 * 32 * 8 * 128 * 2
)
LLAMA_70B = ServedModel(
    name="llama-3.1-70b", params_billion=70.6, kv_bytes_per_token=2 * 80 * 8 * 128 * 2
)

DEFAULT_MODELS: tuple[ServedModel, ...] = (LLAMA_8B, LLAMA_70B)
"""The models served in the default workload."""
