"""Latency of a request from its lengths, its replica's speed and the load it meets.

For a request with ``n_in`` prompt tokens of which ``n_cached`` hit the prefix cache,
``n_out`` output tokens, submitted while ``b`` requests run, ``w`` wait and the KV
cache is ``u`` full:

* queue_s = ``w x slot_s x Gamma(2, 1/2)``, where ``slot_s`` is the mean time
  between two batch slots freeing up (a 300-token request at full batch / max batch);
* prefill_s = ``overhead + (n_in - n_cached) / prefill_tps x (1 + 0.5 b / max_batch)``
  (running decodes slow a chunked prefill down);
* ttft_s = ``(queue_s + prefill_s) x LogNormal(0, sigma_ttft)``;
* latency_s = ``ttft_s + n_out x tpot(b, u) x LogNormal(0, sigma_decode)``, plus a
  rare log-normal stall (preemption, retry) with probability ``stall_probability``.

So ``0 < ttft_s <= latency_s`` always holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from feature_store.workload._speed import DeviceSpeed

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Sigma = Annotated[float, Field(ge=0, le=2)]
Probability = Annotated[float, Field(ge=0, le=1)]


class NoiseConfig(BaseModel):
    """Randomness around the physical latency model.

    Attributes:
        ttft_sigma: Log-normal sigma of the time to first token.
        decode_sigma: Log-normal sigma of the decode time.
        stall_probability: Chance of a stall added to the latency.
        stall_median_s: Median stall, seconds.
        stall_sigma: Log-normal sigma of a stall.
        prefill_interference: Prefill slow-down at a full running batch (0.5 = +50%).
        queue_service_tokens: Output tokens of the typical request that frees a slot.
        cache_hit_probability: Chance a cacheable prefix is found with an empty cache.
        cache_eviction: Drop of that chance per unit of KV-cache utilisation.
        cache_block_tokens: Prefix caching granularity, tokens.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ttft_sigma: Sigma = 0.15
    decode_sigma: Sigma = 0.08
    stall_probability: Probability = 0.003
    stall_median_s: Annotated[float, Field(gt=0)] = 2.0
    stall_sigma: Sigma = 1.0
    prefill_interference: Annotated[float, Field(ge=0, le=10)] = 0.5
    queue_service_tokens: Annotated[int, Field(ge=1)] = 300
    cache_hit_probability: Probability = 0.95
    cache_eviction: Probability = 0.5
    cache_block_tokens: Annotated[int, Field(ge=1)] = 16


@dataclass(frozen=True, slots=True)
class SpeedTable:
    """The speeds of every replica as arrays indexed by replica.

    Attributes:
        prefill_tps: Prefill throughput, tokens/s.
        weight_read_s: Weight streaming time per decode step, seconds.
        kv_pool_read_s: Full-KV-pool streaming time, seconds.
        compute_per_seq_s: Compute per sequence per decode step, seconds.
        max_batch: Maximum running batch.
        kv_capacity_seqs: Typical sequences the KV pool holds.
        overhead_s: Fixed per-request overhead, seconds.
    """

    prefill_tps: FloatArray
    weight_read_s: FloatArray
    kv_pool_read_s: FloatArray
    compute_per_seq_s: FloatArray
    max_batch: IntArray
    kv_capacity_seqs: FloatArray
    overhead_s: FloatArray

    @classmethod
    def of(cls, speeds: Sequence[DeviceSpeed]) -> SpeedTable:
        """Stack per-replica speeds into arrays.

        Args:
            speeds: One entry per replica, in replica-index order.

        Returns:
            The table.
        """

        def col(name: str) -> FloatArray:
            return np.array([getattr(s, name) for s in speeds], dtype=np.float64)

        return cls(
            prefill_tps=col("prefill_tokens_per_s"),
            weight_read_s=col("weight_read_s"),
            kv_pool_read_s=col("kv_pool_read_s"),
            compute_per_seq_s=col("compute_per_seq_s"),
            max_batch=np.array([s.max_batch for s in speeds], dtype=np.int64),
            kv_capacity_seqs=col("kv_capacity_seqs"),
            overhead_s=col("overhead_s"),
        )

    def tpot_s(self, replica: IntArray, running: IntArray, kv_util: FloatArray) -> FloatArray:
        """Time per output token, seconds (see :meth:`DeviceSpeed.tpot_s`)."""
        return np.asarray(
            self.weight_read_s[replica]
            + kv_util * self.kv_pool_read_s[replica]
            + (running + 1) * self.compute_per_seq_s[replica],
            dtype=np.float64,
        )


def cached_tokens(
    prefix: IntArray,
    input_tokens: IntArray,
    kv_util: FloatArray,
    noise: NoiseConfig,
    rng: np.random.Generator,
) -> IntArray:
    """Prompt tokens served from the prefix cache.

    Args:
        prefix: Cacheable prefix (system prompt, earlier turns), tokens.
        input_tokens: Prompt length, tokens.
        kv_util: KV-cache utilisation at submission (a fuller cache evicts more).
        noise: Hit probability, eviction and block size.
        rng: Random source.

    Returns:
        Whole cached blocks of the prefix on a hit, else 0; never above the input.
    """
    p_hit = np.clip(noise.cache_hit_probability - noise.cache_eviction * kv_util, 0.0, 1.0)
    hit = rng.random(len(prefix)) < p_hit
    block = noise.cache_block_tokens
    return np.where(hit, np.minimum(prefix // block * block, input_tokens), 0).astype(np.int64)


def latencies(
    speeds: SpeedTable,
    replica: IntArray,
    uncached: IntArray,
    output_tokens: IntArray,
    running: IntArray,
    waiting: IntArray,
    kv_util: FloatArray,
    noise: NoiseConfig,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    """Time to first token and end-to-end latency of each request, seconds.

    Args:
        speeds: Per-replica speeds.
        replica: Replica index per request.
        uncached: Prompt tokens to prefill (input minus cached).
        output_tokens: Generated tokens.
        running: Requests running at submission.
        waiting: Requests queued at submission.
        kv_util: KV-cache utilisation at submission.
        noise: Noise and interference parameters.
        rng: Random source.

    Returns:
        ``(ttft_s, latency_s)`` with ``0 < ttft_s <= latency_s``.
    """
    n = len(replica)
    max_batch = speeds.max_batch[replica]
    full_tpot = speeds.tpot_s(replica, max_batch, np.ones(n))
    slot_s = noise.queue_service_tokens * full_tpot / max_batch
    queue = waiting * slot_s * rng.gamma(2.0, 0.5, n)
    interference = 1.0 + noise.prefill_interference * running / max_batch
    prefill = speeds.overhead_s[replica] + uncached / speeds.prefill_tps[replica] * interference
    ttft = (queue + prefill) * rng.lognormal(0.0, noise.ttft_sigma, n)
    decode = output_tokens * speeds.tpot_s(replica, running, kv_util)
    decode = decode * rng.lognormal(0.0, noise.decode_sigma, n)
    stalled = rng.random(n) < noise.stall_probability
    stall = np.log(noise.stall_median_s) + noise.stall_sigma * rng.standard_normal(n)
    latency = ttft + decode + np.where(stalled, np.exp(stall), 0.0)
    return ttft, latency
