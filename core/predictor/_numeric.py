"""Numeric features computed from request columns, identically in training and serving.

Every feature is a pure function of the columns a router can send (or the store can
compute at prediction time), so a training frame and a live request go through the
same code. Missing inputs give NaN; the predictor imputes the training mean and the
``has_*`` indicators tell the model what was missing.

>>> cols = {"input_tokens": [100, None], "cached_tokens": [50, None], "device": ["h100", "x"]}
>>> m = numeric_matrix(cols, ("log_input_tokens", "cached_fraction", "has_device_spec"), 2)
>>> m.round(3).tolist()
[[4.615, 0.5, 1.0], [nan, nan, 0.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from core.devices import device_spec
from core.errors import InputError

F64 = npt.NDArray[np.float64]
Columns = Mapping[str, Any]


def _col(cols: Columns, name: str, n: int) -> F64:
    """Column ``name`` as float64 with NaN for missing (absent column: all NaN).

    Raises:
        InputError: A value no float64 holds (an integer over ~1.8e308), naming the column.
    """
    values = cols.get(name)
    if values is None:
        return np.full(n, np.nan)
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.dtype == object:
        try:
            return np.array([np.nan if v is None else float(v) for v in arr], dtype=np.float64)
        except OverflowError:
            raise InputError(f"{name}: a value is too large for a float64") from None
    return arr.astype(np.float64, copy=False)


def _log1p(x: F64) -> F64:
    with np.errstate(invalid="ignore"):
        return np.log1p(np.maximum(x, 0.0))


def _present(*xs: F64) -> F64:
    present: F64 = np.any(np.stack([~np.isnan(x) for x in xs]), axis=0).astype(np.float64)
    return present


@lru_cache(maxsize=1024)
def _device_figures(name: str) -> tuple[float, float, float]:
    try:
        spec = device_spec(name)
    except InputError:
        return (np.nan, np.nan, np.nan)
    return (
        float(np.log(spec.peak_bf16_tflops)),
        float(np.log(spec.memory_bandwidth_gbps)),
        float(np.log(spec.memory_gb)),
    )


def _device(cols: Columns, n: int, which: int) -> F64:
    devices = cols.get("device")
    if devices is None:
        return np.full(n, np.nan)
    return np.array([_device_figures(str(d))[which] for d in devices], dtype=np.float64)


def _prompt_chars(cols: Columns, n: int) -> F64:
    prompts = cols.get("prompt")
    if prompts is None:
        return np.full(n, np.nan)
    return np.array([np.nan if p is None else len(p) for p in prompts], dtype=np.float64)


Feature = Callable[[Columns, int], F64]

FEATURES: dict[str, Feature] = {
    "log_input_tokens": lambda c, n: _log1p(_col(c, "input_tokens", n)),
    "cached_fraction": lambda c, n: (
        _col(c, "cached_tokens", n) / np.maximum(_col(c, "input_tokens", n), 1.0)
    ),
    "log_uncached_tokens": lambda c, n: _log1p(
        _col(c, "input_tokens", n) - np.nan_to_num(_col(c, "cached_tokens", n))
    ),
    "log_step": lambda c, n: _log1p(_col(c, "step", n)),
    "log_num_running": lambda c, n: _log1p(_col(c, "num_running", n)),
    "log_num_waiting": lambda c, n: _log1p(_col(c, "num_waiting", n)),
    "kv_cache_util": lambda c, n: _col(c, "kv_cache_util", n),
    # Linear, in thousands: prefill work grows with the tokens, not with their log.
    "input_ktokens": lambda c, n: _col(c, "input_tokens", n) / 1000.0,
    "prefill_ktokens_in_flight": lambda c, n: _col(c, "prefill_tokens_in_flight", n) / 1000.0,
    "decode_ktokens_in_flight": lambda c, n: _col(c, "decode_tokens_in_flight", n) / 1000.0,
    "log_output_tokens": lambda c, n: _log1p(_col(c, "output_tokens", n)),
    "has_load": lambda c, n: _present(
        _col(c, "num_running", n), _col(c, "num_waiting", n), _col(c, "kv_cache_util", n)
    ),
    "log_prompt_chars": lambda c, n: _log1p(_prompt_chars(c, n)),
    "log_ep_tokens_per_s": lambda c, n: _log1p(_col(c, "ep_median_tokens_per_s", n)),
    "log_ep_latency_s": lambda c, n: _log1p(_col(c, "ep_median_latency_s", n)),
    "has_endpoint_history": lambda c, n: (np.nan_to_num(_col(c, "ep_completions", n)) > 0).astype(
        np.float64
    ),
    "log_prev_output_tokens": lambda c, n: _log1p(_col(c, "wf_prev_output_tokens", n)),
    "log_prev_latency_s": lambda c, n: _log1p(_col(c, "wf_prev_latency_s", n)),
    "has_prev_call": lambda c, n: _present(_col(c, "wf_prev_latency_s", n)),
    "device_log_tflops": lambda c, n: _device(c, n, 0),
    "device_log_bandwidth": lambda c, n: _device(c, n, 1),
    "device_log_memory": lambda c, n: _device(c, n, 2),
    "has_device_spec": lambda c, n: _present(_device(c, n, 0)),
}

#: What a router knows about the request itself (the baselines' feature set).
REQUEST_FEATURES: tuple[str, ...] = (
    "log_input_tokens",
    "cached_fraction",
    "log_uncached_tokens",
    "log_step",
    "log_num_running",
    "log_num_waiting",
    "kv_cache_util",
    "has_load",
    "device_log_tflops",
    "device_log_bandwidth",
    "device_log_memory",
    "has_device_spec",
)
#: Request features plus runtime state (tokens in flight on the replica, endpoint speed,
#: the workflow's previous call). ``input_ktokens`` (llm-d's) and ``log_output_tokens`` are in
#: neither set: output tokens are an outcome for most targets, an input only where the
#: router knows them (llm-d's TPOT).
ALL_FEATURES: tuple[str, ...] = (
    *REQUEST_FEATURES,
    "prefill_ktokens_in_flight",
    "decode_ktokens_in_flight",
    "log_prompt_chars",
    "log_ep_tokens_per_s",
    "log_ep_latency_s",
    "has_endpoint_history",
    "log_prev_output_tokens",
    "log_prev_latency_s",
    "has_prev_call",
)


def numeric_matrix(cols: Columns, names: Sequence[str], n: int) -> F64:
    """Compute the named features for ``n`` requests.

    Args:
        cols: Column name to a sequence of ``n`` values (None for missing).
        names: Feature names from :data:`FEATURES`.
        n: Number of requests.

    Returns:
        Array of shape ``(n, len(names))``; NaN where an input was missing.

    Raises:
        KeyError: For an unknown feature name.
    """
    if not names:
        return np.zeros((n, 0))
    return np.stack([FEATURES[name](cols, n) for name in names], axis=1)
