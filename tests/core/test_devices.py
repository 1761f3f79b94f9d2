from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.devices import DEVICE_ALIASES, DEVICES, DeviceSpec, UnknownDeviceError, device_spec
from core.errors import InputError

REQUIRED = (
    "a100-40gb",
    "a100-80gb",
    "h100-sxm",
    "h100-pcie",
    "h200",
    "l40s",
    "l4",
    "a10g",
    "mi300x",
    "gh200",
)


def test_catalog_has_the_common_accelerators() -> None:
    assert set(REQUIRED) <= set(DEVICES)
    for name, spec in DEVICES.items():
        assert spec.name == name
        assert spec.vendor in {"nvidia", "amd"}


@pytest.mark.parametrize(
    ("name", "tflops", "gbps", "gb"),
    [
        ("a100-40gb", 312.0, 1555.0, 40.0),
        ("a100-80gb", 312.0, 2039.0, 80.0),
        ("h100-sxm", 989.0, 3350.0, 80.0),
        ("h100-pcie", 756.0, 2000.0, 80.0),
        ("h200", 989.0, 4800.0, 141.0),
        ("l40s", 362.05, 864.0, 48.0),
        ("l4", 121.0, 300.0, 24.0),
        ("mi300x", 1307.4, 5300.0, 192.0),
    ],
)
def test_datasheet_figures(name: str, tflops: float, gbps: float, gb: float) -> None:
    spec = DEVICES[name]
    assert (spec.peak_bf16_tflops, spec.memory_bandwidth_gbps, spec.memory_gb) == (
        tflops,
        gbps,
        gb,
    )


def test_newer_generations_are_faster() -> None:
    a100, h100, h200 = (DEVICES[n] for n in ("a100-80gb", "h100-sxm", "h200"))
    assert a100.peak_bf16_tflops < h100.peak_bf16_tflops == h200.peak_bf16_tflops
    assert a100.memory_bandwidth_gbps < h100.memory_bandwidth_gbps < h200.memory_bandwidth_gbps


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("h100-sxm", "h100-sxm"),
        ("H100-SXM", "h100-sxm"),
        ("  L40S ", "l40s"),
        ("a100_80gb", "a100-80gb"),
        ("h100", "h100-sxm"),
        ("H100-80GB", "h100-sxm"),
        ("MI300X", "mi300x"),
    ],
)
def test_lookup_is_case_insensitive_and_knows_aliases(query: str, expected: str) -> None:
    assert device_spec(query).name == expected


def test_aliases_point_into_the_catalog() -> None:
    assert set(DEVICE_ALIASES.values()) <= set(DEVICES)


def test_unknown_device_lists_known_names() -> None:
    with pytest.raises(UnknownDeviceError) as info:
        device_spec("tpu-v9")
    message = str(info.value)
    assert "tpu-v9" in message
    assert all(name in message for name in REQUIRED)
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, InputError)


def test_specs_are_frozen_and_validated() -> None:
    spec = DEVICES["l4"]
    with pytest.raises(ValidationError):
        spec.memory_gb = 48.0  # type: ignore[misc]
    with pytest.raises(ValidationError):
        DeviceSpec(name="x", vendor="y", peak_bf16_tflops=0, memory_bandwidth_gbps=1, memory_gb=1)


def test_catalog_is_read_only() -> None:
    with pytest.raises(TypeError):
        DEVICES["new"] = DEVICES["l4"]  # type: ignore[index]
