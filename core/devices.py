"""Accelerator datasheet figures: what a device can do, independent of any workload.

Predictors use these figures as features (peak compute drives prefill, memory
bandwidth drives decode, memory size drives batch size and tensor parallelism), so a
device never seen in training still gets a forecast from its specs.

Figures are the vendors' published peak numbers: dense BF16 tensor throughput (the
datasheets headline the 2:4-sparsity number, twice the dense one; we store the dense
one), HBM/GDDR bandwidth and capacity per device (per GPU, not per board or node).
Units: TFLOP/s, GB/s (1 GB = 10⁹ bytes) and GB.

>>> spec = device_spec("H100-SXM")
>>> (spec.name, spec.peak_bf16_tflops, spec.memory_bandwidth_gbps, spec.memory_gb)
('h100-sxm', 989.0, 3350.0, 80.0)
>>> device_spec("a100").name  # aliases resolve to the catalog name
'a100-80gb'
>>> device_spec("tpu-v9")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
core.devices.UnknownDeviceError: unknown device 'tpu-v9'; known devices: a100-40gb, ...
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from core.errors import InputError

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class DeviceSpec(BaseModel):
    """Published peak figures of one accelerator (one GPU / one OAM module).

    Attributes:
        name: Catalog name, lower case (``h100-sxm``).
        vendor: ``nvidia`` or ``amd``.
        peak_bf16_tflops: Dense BF16 tensor-core peak, TFLOP/s (no sparsity).
        memory_bandwidth_gbps: Peak device-memory bandwidth, GB/s.
        memory_gb: Device memory, GB.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=64)]
    vendor: Annotated[str, Field(min_length=1, max_length=64)]
    peak_bf16_tflops: Positive
    memory_bandwidth_gbps: Positive
    memory_gb: Positive


class UnknownDeviceError(InputError, KeyError):
    """A device name that is neither in :data:`DEVICES` nor an alias of one.

    Also a :class:`KeyError`, so ``except KeyError`` works as for a plain mapping.
    """


def _spec(name: str, vendor: str, tflops: float, gbps: float, gb: float) -> DeviceSpec:
    return DeviceSpec(
        name=name,
        vendor=vendor,
        peak_bf16_tflops=tflops,
        memory_bandwidth_gbps=gbps,
        memory_gb=gb,
    )


_CATALOG: tuple[DeviceSpec, ...] = (
    # NVIDIA A100 Tensor Core GPU datasheet (nvidia.com, 2021): BF16 312 TFLOPS dense
    # (624 with sparsity); A100 40GB SXM: 40 GB HBM2, 1,555 GB/s.
    _spec("a100-40gb", "nvidia", 312.0, 1555.0, 40.0),
    # Same datasheet, A100 80GB SXM: 80 GB HBM2e, 2,039 GB/s.
    _spec("a100-80gb", "nvidia", 312.0, 2039.0, 80.0),
    # NVIDIA H100 Tensor Core GPU datasheet: H100 SXM BF16 1,979 TFLOPS with sparsity
    # (989 dense), 80 GB HBM3, 3.35 TB/s.
    _spec("h100-sxm", "nvidia", 989.0, 3350.0, 80.0),
    # Same datasheet, H100 PCIe: BF16 1,513 TFLOPS with sparsity (756 dense), 80 GB
    # HBM2e, 2 TB/s.
    _spec("h100-pcie", "nvidia", 756.0, 2000.0, 80.0),
    # NVIDIA H200 Tensor Core GPU datasheet: H200 SXM BF16 1,979 TFLOPS with sparsity
    # (989 dense), 141 GB HBM3e, 4.8 TB/s.
    _spec("h200", "nvidia", 989.0, 4800.0, 141.0),
    # NVIDIA GH200 Grace Hopper Superchip datasheet: Hopper GPU BF16 1,979 TFLOPS with
    # sparsity (989 dense); the 96 GB HBM3 version at 4 TB/s (the HBM3e version has
    # 144 GB at 4.9 TB/s).
    _spec("gh200", "nvidia", 989.0, 4000.0, 96.0),
    # NVIDIA L40S datasheet: BF16 362.05 TFLOPS dense (733 with sparsity), 48 GB GDDR6,
    # 864 GB/s.
    _spec("l40s", "nvidia", 362.05, 864.0, 48.0),
    # NVIDIA L4 Tensor Core GPU datasheet: BF16 242 TFLOPS with sparsity (121 dense),
    # 24 GB GDDR6, 300 GB/s.
    _spec("l4", "nvidia", 121.0, 300.0, 24.0),
    # A10G is the AWS (EC2 G5) variant of the NVIDIA A10; NVIDIA publishes no A10G
    # datasheet, so these are the NVIDIA A10 datasheet figures: BF16 125 TFLOPS dense
    # (250 with sparsity), 24 GB GDDR6, 600 GB/s. The A10G's tensor clock is lower, so
    # treat its compute figure as an upper bound.
    _spec("a10g", "nvidia", 125.0, 600.0, 24.0),
    # AMD Instinct MI300X accelerator data sheet (amd.com): peak BF16 1,307.4 TFLOPS
    # dense (2,614.9 with sparsity), 192 GB HBM3, 5.3 TB/s.
    _spec("mi300x", "amd", 1307.4, 5300.0, 192.0),
)

DEVICES: Mapping[str, DeviceSpec] = MappingProxyType({d.name: d for d in _CATALOG})
"""Every catalogued device by name (read-only)."""

DEVICE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "a100": "a100-80gb",
        "a100-sxm": "a100-80gb",
        "h100": "h100-sxm",
        "h100-80gb": "h100-sxm",
        "h200-sxm": "h200",
        "gh200-96gb": "gh200",
        "a10": "a10g",
        "mi300": "mi300x",
    }
)
"""Other spellings in common use (e.g. in public benchmark data) -> catalog name."""


def device_spec(name: str) -> DeviceSpec:
    """Look a device up by name, case-insensitively (``_`` and spaces read as ``-``).

    Args:
        name: A catalog name (``h100-sxm``) or an alias (``h100``).

    Returns:
        The device's datasheet figures.

    Raises:
        UnknownDeviceError: The name is unknown; the message lists the known names.
    """
    key = "-".join(name.strip().lower().replace("_", "-").split())
    key = DEVICE_ALIASES.get(key, key)
    try:
        return DEVICES[key]
    except KeyError:
        known = ", ".join(sorted(DEVICES))
        raise UnknownDeviceError(f"unknown device {name!r}; known devices: {known}") from None
