"""True service times from device measurements (the splitwise performance model).

A request's service time on a device type is composed from
``device_latency/splitwise_perf_model.csv`` (Llama2-70B, tensor parallel 8, or 4 / 2
for the ``-tp4`` / ``-tp2`` device names; one real measurement drawn per request and
device): prefill of the uncached prompt tokens at batch 1, plus output tokens x the
per-token time, the decode part scaled by the measured ratio of per-token time at
batch ``slots`` to batch 1 (each of a replica's ``slots`` requests runs at the
batch-``slots`` speed).

The measurements are not packaged: a request names them (``device_data``, the CLI's
``--device-data`` or ``TAILCAST_DEVICE_DATA``); without one, a source checkout uses
the public data beside it (``../shared/data``), and anything else is an
:class:`core.InputError` saying what to pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pipelines.simulate._trace import TraceData

F64 = npt.NDArray[np.float64]

CHECKOUT_DEVICE_DATA = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "device_latency"
    / "splitwise_perf_model.csv"
)
"""Where a source checkout finds the measurements (the public data beside it)."""

#: Cluster device names -> the splitwise measurement's hardware column.
HARDWARE: dict[str, str] = {
    "a100": "a100-80gb",
    "h100": "h100-80gb",
    "h100-pcap": "h100-80gb-pcap",
    "a100-tp4": "a100-80gb",
    "a100-tp2": "a100-80gb",
    "h100-tp4": "h100-80gb",
    "h100-tp2": "h100-80gb",
}
#: Tensor-parallel degree of the measurement per device name (absent: the largest, 8).
TENSOR_PARALLEL: dict[str, int] = {"a100-tp4": 4, "a100-tp2": 2, "h100-tp4": 4, "h100-tp2": 2}
PROFILE_MODEL = "llama2-70b"


def device_data_path(path: Path | None = None) -> Path:
    """The device measurements to read: ``path``, else the checkout's shared data.

    Raises:
        core.InputError: The file does not exist (the message says what to pass).
    """
    from core import InputError

    chosen = path if path is not None else CHECKOUT_DEVICE_DATA
    if not chosen.is_file():
        raise InputError(
            f"device measurements not found at {chosen}: pass --device-data (or set "
            "TAILCAST_DEVICE_DATA) to the splitwise_perf_model.csv of the public data "
            "(device_latency/ in the shared data set)"
        )
    return chosen


def service_times(
    trace: TraceData,
    devices: Sequence[str],
    slots: int = 1,
    device_data: Path | None = None,
    seed: int = 0,
) -> F64:
    """True service time of every request on every device type, ``(n, D)`` seconds.

    See the module doc for the composition. The draws are seeded per device, so a
    request's service time does not depend on which other devices are simulated.

    Args:
        trace: The requests.
        devices: Device type names (keys of :data:`HARDWARE`).
        slots: Requests a replica serves at once (a measured batch size).
        device_data: The measurements (default: see :func:`device_data_path`).
        seed: Seed of the measurement draws.

    Raises:
        core.InputError: Missing measurements, a device without measurements, or
            ``slots`` not a measured batch size (1, 2, 4, ..., 64).
    """
    from core import InputError
    from feature_store.importers import DeviceProfile

    device_data = device_data_path(device_data)

    uncached = np.maximum(trace.cols["input_tokens"] - trace.cols["cached_tokens"], 1.0)
    out = np.empty((trace.n, len(devices)))
    for j, device in enumerate(devices):
        hardware = HARDWARE.get(device)
        if hardware is None:
            raise InputError(f"no measurements for device {device!r}; known: {', '.join(HARDWARE)}")
        tp = TENSOR_PARALLEL.get(device)
        solo = DeviceProfile.load(
            device_data, model=PROFILE_MODEL, hardware=hardware, tensor_parallel=tp
        )
        factor = 1.0
        if slots > 1:
            batched = DeviceProfile.load(
                device_data,
                model=PROFILE_MODEL,
                hardware=hardware,
                batch_size=slots,
                tensor_parallel=tp,
            )
            same = np.isin(solo.prompt_size, batched.prompt_size) & np.isin(
                solo.token_size, batched.token_size
            )
            factor = float(np.median(batched.per_token_s) / np.median(solo.per_token_s[same]))
        digest = hashlib.blake2b(device.encode(), digest_size=4).digest()
        rng = np.random.default_rng((seed, int.from_bytes(digest, "big")))
        composed = solo.compose(uncached, trace.output_tokens, rng)
        prefill = np.nan_to_num(composed.ttft_s)
        out[:, j] = prefill + (composed.latency_s - prefill) * factor
    return np.maximum(out, 1e-3)
