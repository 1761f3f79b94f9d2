"""The fallback predictor: empirical quantiles per (prompt class, device), in seconds.

A service needs a calibrated answer long before a searched network is ready. This
predictor is fitted in milliseconds (no torch, no search) and written in the ordinary
bundle format, so the registry, the service and every client treat it like any other
version: the quantile head's bias holds the log-quantiles of all rows, each device's
one-hot weights move them to that device's, and the conformal offsets of each
``"<prompt class>|<device>"`` calibration group move them to that group's. A device or
group with fewer than ``min_count`` rows falls back to the next coarser level. By
construction the quantiles are calibrated on the rows they were fitted on.

Example:
    >>> import numpy as np
    >>> rows = {"latency_s": np.r_[np.full(50, 1.0), np.full(50, 4.0)],
    ...         "device": ["a"] * 50 + ["b"] * 50, "prompt_class": [None] * 100}
    >>> p = fallback_predictor(rows, "m", levels=(0.5,), min_count=10)
    >>> p.predict({"device": ["a", "b", "tpu"], "served_model": ["m"] * 3}).round(2).ravel()
    array([1., 4., 2.])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from core.predictor import DEFAULT_LEVELS, NO_CLASS, Predictor, PredictorSpec, TextSpec

F64 = npt.NDArray[np.float64]
#: What the bundle's ``metadata["kind"]`` and the registry's version tag say.
FALLBACK_KIND = "fallback"
#: Smallest step between adjacent log-quantiles (the head needs a strict increase).
_MIN_STEP = 1e-6


def _raw(q: F64) -> F64:
    """Pre-activations whose non-crossing quantile head gives ``q`` (strictly increasing)."""
    return np.concatenate([q[:1], np.log(np.expm1(np.diff(q)))])


def _log_quantiles(y: F64, levels: F64) -> F64:
    """Log-quantiles of ``y``, made strictly increasing (steps of at least ``_MIN_STEP``)."""
    q = np.quantile(np.log(y), levels)
    return np.asarray(q[0] + np.concatenate([[0.0], np.cumsum(np.maximum(np.diff(q), _MIN_STEP))]))


def _labels(values: Sequence[Any] | None, n: int, missing: str) -> list[str]:
    if values is None:
        return [missing] * n
    return [missing if v is None or v == "" else str(v) for v in values]


def fallback_predictor(
    rows: Mapping[str, Any],
    served_model: str,
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    min_count: int = 20,
) -> Predictor:
    """Fit the fallback predictor of ``served_model`` on completed rows.

    Args:
        rows: Columns ``latency_s`` (seconds, > 0), ``device`` and optionally
            ``prompt_class`` (a client's label; missing labels form their own class).
        served_model: The served model the predictor answers for.
        levels: Quantile levels, strictly increasing in (0, 1).
        min_count: Rows a device or a (class, device) group needs for its own quantiles.

    Raises:
        ValueError: No row with a positive finite latency.
    """
    y = np.asarray(rows["latency_s"], dtype=np.float64)
    keep = np.isfinite(y) & (y > 0)
    if not keep.any():
        raise ValueError("no completed row with a positive latency to fit a fallback on")
    n = len(y)
    devices = np.array(_labels(rows.get("device"), n, ""), dtype=object)[keep]
    classes = np.array(_labels(rows.get("prompt_class"), n, NO_CLASS), dtype=object)[keep]
    y, lv = y[keep], np.asarray(levels, dtype=np.float64)
    pooled = _log_quantiles(y, lv)
    by_device: dict[str, F64] = {}
    for device in sorted(set(devices) - {""}):
        members = devices == device
        if members.sum() >= min_count:
            by_device[device] = _log_quantiles(y[members], lv)
    groups: dict[str, F64] = {}
    for device, base in by_device.items():
        for cls in sorted(set(classes[devices == device])):
            members = (devices == device) & (classes == cls)
            if members.sum() >= min_count:
                groups[f"{cls}|{device}"] = _log_quantiles(y[members], lv) - base
    names = tuple(by_device)
    head_w = np.array([_raw(by_device[d]) - _raw(pooled) for d in names]).reshape(len(names), -1)
    spec = PredictorSpec(
        served_models=(served_model,),
        levels=tuple(float(v) for v in lv),
        numeric=(),
        devices=names,
        text=TextSpec(kind="none"),
        hidden=(),
        calibration_groups=("*", *groups),
        metadata={
            "kind": FALLBACK_KIND,
            "method": "empirical quantiles per (prompt class, device)",
            "rows": str(int(keep.sum())),
        },
    )
    arrays = {
        "num_mean": np.zeros(0),
        "num_std": np.ones(0),
        "head_W": np.vstack([head_w, np.zeros((1, len(lv)))]),  # the served-model one-hot
        "head_b": _raw(pooled),
        "cal_offsets": np.vstack([np.zeros((1, len(lv))), *groups.values()]),
    }
    return Predictor(spec, arrays)
