"""Device speed from datasheet figures: prefill is compute-bound, decode memory-bound.

For a model with ``P`` parameters (``W`` bytes of weights) served with tensor
parallelism ``tp`` on a device with dense BF16 peak ``F`` (FLOP/s) and memory
bandwidth ``B`` (bytes/s):

* prefill throughput, tokens/s = ``e_p * F * tp**g / (2 * P)``;
* time per output token, s = ``(W + u * K) / (e_d * B * tp**g)
  + (b + 1) * 2 * P / (e_p * F * tp**g)``: every decode step reads all weights plus
  the KV cache in use (``u`` = KV-cache utilisation of a pool of ``K`` bytes) and
  computes one token for each of the ``b`` running sequences plus this one.

``tp**g`` (``g`` = 0.9) is imperfect tensor-parallel scaling. ``tp`` is the smallest
power of two whose devices hold the weights in 75% of their memory; the KV pool is what
is left of 90% of it; the maximum batch is the pool divided by a 2,048-token context.

Calibration (``e_p`` = 0.6, ``e_d`` = 0.65), against real measurements at batch 1:

============================  ==========  ===============================
model, device, tp             this model  measured
============================  ==========  ===============================
llama2-70b, a100-80gb, tp2    57 ms/tok   55 ms (splitwise-sim)
llama2-70b, h100, tp2         35 ms/tok   37 ms (splitwise-sim)
llama-3-70b, h100, tp4        19 ms/tok   19 ms (LLM-Inference-Bench, vLLM)
llama-3-8b, h100, tp1         7.4 ms/tok  7.9 ms (LLM-Inference-Bench, vLLM)
llama2-70b, a100, tp2, 2,048  0.83 s      0.69 s prefill (splitwise-sim)
llama2-70b, h100, tp2, 2,048  0.26 s      0.31 s prefill (splitwise-sim)
============================  ==========  ===============================

MI300X gets a software efficiency of 0.5 on top: LLM-Inference-Bench measured
llama-3-8b with vLLM on it at 9.8 ms/token, twice its bandwidth bound.

>>> from core.devices import device_spec
>>> from feature_store.workload._models import LLAMA_70B
>>> s = device_speed(device_spec("a100-80gb"), LLAMA_70B, tensor_parallel=2)
>>> round(s.tpot_s(0, 0.0) * 1000, 1)  # ms per output token, idle device
57.5
>>> device_speed(device_spec("a100-80gb"), LLAMA_70B).tensor_parallel
4
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, overload

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from core.devices import DeviceSpec
from feature_store.workload._models import ServedModel

Fraction = Annotated[float, Field(gt=0, le=1)]


class SpeedConfig(BaseModel):
    """Efficiencies and memory rules that turn datasheet peaks into real speeds.

    Attributes:
        prefill_efficiency: Share of peak BF16 FLOP/s reached in prefill.
        decode_efficiency: Share of peak memory bandwidth reached in decode.
        tp_scaling_exponent: Speed-up of ``tp`` devices is ``tp ** exponent``.
        weight_memory_fraction: Weights may fill at most this share of the memory of
            the ``tp`` devices (chooses ``tp``).
        kv_memory_fraction: Share of memory usable by weights plus KV cache.
        device_efficiency: Extra software efficiency per device name (default 1).
        overhead_s: Fixed per-request overhead (tokenization, scheduling), seconds.
        typical_context_tokens: Context length that sizes the maximum batch, tokens.
        max_batch: Upper bound on concurrently running requests per replica.
        max_tensor_parallel: Largest tensor-parallel degree tried.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefill_efficiency: Fraction = 0.6
    decode_efficiency: Fraction = 0.65
    tp_scaling_exponent: Fraction = 0.9
    weight_memory_fraction: Fraction = 0.75
    kv_memory_fraction: Fraction = 0.9
    device_efficiency: dict[str, Fraction] = Field(default_factory=lambda: {"mi300x": 0.5})
    overhead_s: Annotated[float, Field(gt=0, le=10)] = 0.015
    typical_context_tokens: Annotated[int, Field(gt=0)] = 2048
    max_batch: Annotated[int, Field(ge=1)] = 256
    max_tensor_parallel: Annotated[int, Field(ge=1, le=64)] = 8


@dataclass(frozen=True, slots=True)
class DeviceSpeed:
    """Speed of one model on one device type (one replica of ``tensor_parallel`` GPUs).

    Attributes:
        device: Device name.
        model: Served model name.
        tensor_parallel: Devices per replica.
        prefill_tokens_per_s: Prompt tokens processed per second, tokens/s.
        weight_read_s: Time to stream the weights once, seconds.
        kv_pool_read_s: Time to stream a full KV-cache pool once, seconds.
        compute_per_seq_s: Compute time per sequence per decode step, seconds.
        max_batch: Most requests that run at once (KV pool / typical context, capped).
        kv_capacity_seqs: Typical-context sequences the KV pool holds (uncapped).
        overhead_s: Fixed per-request overhead, seconds.
    """

    device: str
    model: str
    tensor_parallel: int
    prefill_tokens_per_s: float
    weight_read_s: float
    kv_pool_read_s: float
    compute_per_seq_s: float
    max_batch: int
    kv_capacity_seqs: float
    overhead_s: float

    @overload
    def tpot_s(self, num_running: int, kv_cache_util: float) -> float: ...

    @overload
    def tpot_s(
        self, num_running: npt.NDArray[np.int64], kv_cache_util: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]: ...

    def tpot_s(
        self,
        num_running: int | npt.NDArray[np.int64],
        kv_cache_util: float | npt.NDArray[np.float64],
    ) -> float | npt.NDArray[np.float64]:
        """Time per output token while ``num_running`` others decode, seconds.

        Args:
            num_running: Other requests in the running batch.
            kv_cache_util: KV-cache utilisation in [0, 1].

        Returns:
            Seconds per output token (scalar or array, like the arguments).
        """
        value = (
            self.weight_read_s
            + kv_cache_util * self.kv_pool_read_s
            + (num_running + 1) * self.compute_per_seq_s
        )
        if isinstance(value, np.ndarray):
            return value.astype(np.float64, copy=False)
        return float(value)


def tensor_parallel_for(device: DeviceSpec, model: ServedModel, config: SpeedConfig) -> int:
    """Smallest power-of-two replica size whose memory holds the weights.

    Args:
        device: Datasheet figures of one device.
        model: The served model.
        config: Memory rules (``weight_memory_fraction``, ``max_tensor_parallel``).

    Returns:
        Devices per replica.

    Raises:
        ValueError: The model does not fit even on ``max_tensor_parallel`` devices.
    """
    tp = 1
    while tp <= config.max_tensor_parallel:
        if model.weight_bytes <= config.weight_memory_fraction * tp * device.memory_gb * 1e9:
            return tp
        tp *= 2
    raise ValueError(
        f"{model.name} ({model.weight_bytes / 1e9:.0f} GB of weights) does not fit on "
        f"{config.max_tensor_parallel} x {device.name} ({device.memory_gb:g} GB each)"
    )


def device_speed(
    device: DeviceSpec,
    model: ServedModel,
    config: SpeedConfig | None = None,
    tensor_parallel: int | None = None,
) -> DeviceSpeed:
    """Derive prefill and decode speed of ``model`` on ``device`` from its datasheet.

    Args:
        device: Datasheet figures of one device.
        model: The served model.
        config: Efficiencies and memory rules; defaults to :class:`SpeedConfig`.
        tensor_parallel: Force this replica size instead of the memory rule.

    Returns:
        The derived speeds (see the module docstring for the formulas).
    """
    cfg = config or SpeedConfig()
    tp = tensor_parallel or tensor_parallel_for(device, model, cfg)
    scale = cfg.device_efficiency.get(device.name, 1.0) * tp**cfg.tp_scaling_exponent
    flops = cfg.prefill_efficiency * device.peak_bf16_tflops * 1e12 * scale
    bandwidth = cfg.decode_efficiency * device.memory_bandwidth_gbps * 1e9 * scale
    kv_pool = max(cfg.kv_memory_fraction * tp * device.memory_gb * 1e9 - model.weight_bytes, 0)
    per_seq = cfg.typical_context_tokens * model.kv_bytes_per_token
    return DeviceSpeed(
        device=device.name,
        model=model.name,
        tensor_parallel=tp,
        prefill_tokens_per_s=flops / model.flops_per_token,
        weight_read_s=model.weight_bytes / bandwidth,
        kv_pool_read_s=kv_pool / bandwidth,
        compute_per_seq_s=model.flops_per_token / flops,
        max_batch=int(np.clip(kv_pool // per_seq, 1, cfg.max_batch)),
        kv_capacity_seqs=max(kv_pool / per_seq, 1.0),
        overhead_s=cfg.overhead_s,
    )
