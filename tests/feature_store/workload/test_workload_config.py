"""WorkloadConfig: defaults, validation, and how knobs change the output."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from feature_store.workload import (
    DEFAULT_PROMPT_CLASSES,
    LLAMA_8B,
    LoadConfig,
    PromptClass,
    ServedModel,
    WorkloadConfig,
    generate_workload,
)


def test_defaults_are_valid_and_frozen() -> None:
    cfg = WorkloadConfig()
    assert cfg.n_records == 10_000
    assert cfg.start.utcoffset() is not None
    assert len(cfg.prompt_classes) >= 5
    with pytest.raises(ValidationError):
        cfg.seed = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad",
    [
        {"n_records": 0},
        {"seed": -1},
        {"arrival_rate_per_s": 0},
        {"model_mix": {"gpt-9": 1.0}},
        {"model_mix": {"llama-3.1-8b": 0.0, "llama-3.1-70b": 0.0}},
        {"device_mix": {"tpu-v9": 1.0}},
        {"device_mix": {"l4": 0.0}},
        {"prompt_classes": (DEFAULT_PROMPT_CLASSES[0], DEFAULT_PROMPT_CLASSES[0])},
        {"unknown_knob": 1},
    ],
)
def test_invalid_configs_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        WorkloadConfig.model_validate(bad)


def test_device_aliases_are_normalized() -> None:
    assert WorkloadConfig(device_mix={"H100": 1.0, "h100-sxm": 1.0}).device_mix == {"h100-sxm": 2.0}


def test_templates_with_unknown_slots_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown slot"):
        PromptClass(
            name="x",
            share=1,
            templates=(("Do {thing}", 1.0),),
            topics=(("a", 1.0),),
            output_median_tokens=10,
        )


def test_mixes_restrict_what_is_generated() -> None:
    cfg = WorkloadConfig(
        n_records=500,
        served_models=(LLAMA_8B,),
        model_mix={"llama-3.1-8b": 1.0},
        device_mix={"l4": 1.0},
        prompt_classes=(DEFAULT_PROMPT_CLASSES[3],),
    )
    t = generate_workload(cfg)
    assert set(t.column("device").to_pylist()) == {"l4"}
    assert set(t.column("served_model").to_pylist()) == {"llama-3.1-8b"}
    assert set(t.column("prompt_class").to_pylist()) == {"math_reasoning"}


def test_a_model_that_fits_nowhere_is_an_error() -> None:
    huge = ServedModel(name="huge", params_billion=405, kv_bytes_per_token=516_096)
    cfg = WorkloadConfig(served_models=(huge,), model_mix={"huge": 1.0}, device_mix={"l4": 1})
    with pytest.raises(ValueError, match="fits on no device"):
        generate_workload(cfg)


def test_devices_that_cannot_hold_a_model_are_skipped() -> None:
    big = ServedModel(name="big", params_billion=300, kv_bytes_per_token=300_000)
    cfg = WorkloadConfig(
        n_records=300,
        served_models=(big,),
        model_mix={"big": 1.0},
        device_mix={"l4": 1.0, "mi300x": 1.0},
    )
    assert set(generate_workload(cfg).column("device").to_pylist()) == {"mi300x"}


@pytest.mark.parametrize("rate", [1.0, 10.0])
def test_arrival_rate_is_the_rate_of_calls(rate: float) -> None:
    n = 20_000
    t = generate_workload(WorkloadConfig(n_records=n, arrival_rate_per_s=rate))
    seconds = t.column("submitted_at").cast(pa.int64()).to_numpy() / 1e6
    q1, q3 = np.quantile(seconds, [0.25, 0.75])
    assert n / 2 / (q3 - q1) == pytest.approx(rate, rel=0.15)


def test_more_load_means_more_queueing() -> None:
    def waiting(util: float) -> float:
        cfg = WorkloadConfig(n_records=5000, load=LoadConfig(base_utilization=util))
        return float(np.mean(generate_workload(cfg).column("num_waiting").to_numpy()))

    assert waiting(0.9) > 3 * waiting(0.4)
