"""Device speeds derived from datasheets land near real measurements."""

from __future__ import annotations

import numpy as np
import pytest

from core.devices import DEVICES, device_spec
from feature_store.workload import (
    LLAMA_8B,
    LLAMA_70B,
    ServedModel,
    SpeedConfig,
    device_speed,
    token_count,
)
from feature_store.workload._speed import tensor_parallel_for

# Real measurements at batch 1 (public data, medians; see docs/workload.md):
# splitwise-sim (llama2-70b, bf16): a100-80gb tp2 55 ms/token, h100 tp2 37 ms/token,
# prefill of 2,048 tokens 688 ms (a100 tp2) and 310 ms (h100 tp2).
# LLM-Inference-Bench (vLLM): llama-3-70b h100 tp4 19.2 ms/token, llama-3-8b h100 tp1
# 7.9 ms/token, llama-3-8b mi300x tp1 9.8 ms/token.
DECODE_MS = [
    ("a100-80gb", LLAMA_70B, 2, 55.0),
    ("h100-sxm", LLAMA_70B, 2, 37.0),
    ("h100-sxm", LLAMA_70B, 4, 19.2),
    ("h100-sxm", LLAMA_8B, 1, 7.9),
    ("mi300x", LLAMA_8B, 1, 9.8),
]
PREFILL_2048_MS = [("a100-80gb", 688.0), ("h100-sxm", 310.0)]


@pytest.mark.parametrize(("device", "model", "tp", "measured_ms"), DECODE_MS)
def test_decode_speed_is_calibrated(
    device: str, model: ServedModel, tp: int, measured_ms: float
) -> None:
    speed = device_speed(device_spec(device), model, tensor_parallel=tp)
    assert speed.tpot_s(0, 0.0) * 1000 == pytest.approx(measured_ms, rel=0.1)


@pytest.mark.parametrize(("device", "measured_ms"), PREFILL_2048_MS)
def test_prefill_speed_is_calibrated(device: str, measured_ms: float) -> None:
    speed = device_speed(device_spec(device), LLAMA_70B, tensor_parallel=2)
    assert 2048 / speed.prefill_tokens_per_s * 1000 == pytest.approx(measured_ms, rel=0.25)


def test_pinned_derivation() -> None:
    s = device_speed(device_spec("h100-sxm"), LLAMA_8B)
    assert s.tensor_parallel == 1
    assert s.prefill_tokens_per_s == pytest.approx(0.6 * 989e12 / (2 * 8.03e9))
    assert s.weight_read_s == pytest.approx(16.06e9 / (0.65 * 3350e9))
    assert s.max_batch == 208
    assert s.tpot_s(0, 0.0) == pytest.approx(0.007402495, abs=1e-9)  # + one token of compute


@pytest.mark.parametrize(
    ("device", "model", "tp"),
    [
        ("h100-sxm", LLAMA_70B, 4),
        ("a100-40gb", LLAMA_70B, 8),
        ("h200", LLAMA_70B, 2),
        ("mi300x", LLAMA_70B, 1),
        ("l4", LLAMA_8B, 1),
        ("l4", LLAMA_70B, 8),
    ],
)
def test_tensor_parallel_follows_memory(device: str, model: ServedModel, tp: int) -> None:
    assert tensor_parallel_for(device_spec(device), model, SpeedConfig()) == tp


def test_a_model_too_big_for_the_device_is_refused() -> None:
    huge = ServedModel(name="llama-3.1-405b", params_billion=405, kv_bytes_per_token=516_096)
    with pytest.raises(ValueError, match="does not fit"):
        device_speed(device_spec("l4"), huge)


def test_tpot_grows_with_batch_and_kv_cache() -> None:
    s = device_speed(device_spec("a100-80gb"), LLAMA_8B)
    assert s.tpot_s(0, 0.0) < s.tpot_s(64, 0.0) < s.tpot_s(64, 0.5)
    arr = s.tpot_s(np.array([0, 64]), np.array([0.0, 0.5]))
    assert arr.dtype == np.float64
    assert arr.tolist() == pytest.approx([s.tpot_s(0, 0.0), s.tpot_s(64, 0.5)])


def test_every_device_serves_both_default_models() -> None:
    for spec in DEVICES.values():
        for model in (LLAMA_8B, LLAMA_70B):
            s = device_speed(spec, model)
            assert s.prefill_tokens_per_s > 0
            assert 0 < s.tpot_s(0, 0.0) < 0.2
            assert 1 <= s.max_batch <= 256


def test_device_efficiency_slows_a_device() -> None:
    plain = SpeedConfig(device_efficiency={})
    mi300x = device_spec("mi300x")
    assert device_speed(mi300x, LLAMA_8B).tpot_s(0, 0.0) == pytest.approx(
        2 * device_speed(mi300x, LLAMA_8B, plain).tpot_s(0, 0.0)
    )


@pytest.mark.parametrize(("text", "tokens"), [("", 1), ("abcd", 1), ("abcde", 2), ("x" * 40, 10)])
def test_token_count(text: str, tokens: int) -> None:
    assert token_count(text) == tokens
