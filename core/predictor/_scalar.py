"""The numeric features of one request, computed on Python floats.

:func:`core.predictor._numeric.numeric_matrix` computes every feature as a numpy
expression over ``n`` rows: about a hundred tiny array operations whose fixed cost
(~1-3 µs each) is most of a single forecast's feature time. For one row the same
features are computed here with :mod:`math` on floats, to the same values (the rules of
the vectorized code, case by case: NaN for missing, ``nan_to_num`` where it is used,
the same overflow error); ``tests/core/predictor/test_scalar.py`` checks the two agree
on random and adversarial rows.

>>> row = {"input_tokens": 100, "cached_tokens": 50, "device": "h100"}
>>> [round(v, 3) for v in numeric_row(row, ("log_input_tokens", "cached_fraction"))]
[4.615, 0.5]
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from core.errors import InputError
from core.predictor._numeric import _device_figures

NAN = math.nan
_MAX = sys.float_info.max
Row = Mapping[str, Any]


def _f(row: Row, name: str) -> float:
    value = row.get(name)
    if value is None:
        return NAN
    try:
        return float(value)
    except OverflowError:
        raise InputError(f"{name}: a value is too large for a float64") from None


def _log1p(x: float) -> float:
    if math.isnan(x):
        return NAN
    return math.log1p(x) if x > 0.0 else 0.0


def _nan_to_num(x: float) -> float:
    if math.isnan(x):
        return 0.0
    if math.isinf(x):
        return _MAX if x > 0 else -_MAX
    return x


def _present(*xs: float) -> float:
    return 1.0 if any(not math.isnan(x) for x in xs) else 0.0


def _device(row: Row, which: int) -> float:
    if "device" not in row:
        return NAN
    return _device_figures(str(row["device"]))[which]


def _cached_fraction(row: Row) -> float:
    inputs = _f(row, "input_tokens")
    cached = _f(row, "cached_tokens")
    if math.isnan(inputs):
        return NAN
    return cached / max(inputs, 1.0)


def _prompt_chars(row: Row) -> float:
    prompt = row.get("prompt", None)
    return NAN if prompt is None else float(len(prompt))


SCALAR_FEATURES: dict[str, Callable[[Row], float]] = {
    "log_input_tokens": lambda r: _log1p(_f(r, "input_tokens")),
    "cached_fraction": _cached_fraction,
    "log_uncached_tokens": lambda r: _log1p(
        _f(r, "input_tokens") - _nan_to_num(_f(r, "cached_tokens"))
    ),
    "log_step": lambda r: _log1p(_f(r, "step")),
    "log_num_running": lambda r: _log1p(_f(r, "num_running")),
    "log_num_waiting": lambda r: _log1p(_f(r, "num_waiting")),
    "kv_cache_util": lambda r: _f(r, "kv_cache_util"),
    "input_ktokens": lambda r: _f(r, "input_tokens") / 1000.0,
    "prefill_ktokens_in_flight": lambda r: _f(r, "prefill_tokens_in_flight") / 1000.0,
    "decode_ktokens_in_flight": lambda r: _f(r, "decode_tokens_in_flight") / 1000.0,
    "log_output_tokens": lambda r: _log1p(_f(r, "output_tokens")),
    "has_load": lambda r: _present(
        _f(r, "num_running"), _f(r, "num_waiting"), _f(r, "kv_cache_util")
    ),
    "log_prompt_chars": lambda r: _log1p(_prompt_chars(r)),
    "log_ep_tokens_per_s": lambda r: _log1p(_f(r, "ep_median_tokens_per_s")),
    "log_ep_latency_s": lambda r: _log1p(_f(r, "ep_median_latency_s")),
    "has_endpoint_history": lambda r: 1.0 if _nan_to_num(_f(r, "ep_completions")) > 0 else 0.0,
    "log_prev_output_tokens": lambda r: _log1p(_f(r, "wf_prev_output_tokens")),
    "log_prev_latency_s": lambda r: _log1p(_f(r, "wf_prev_latency_s")),
    "has_prev_call": lambda r: _present(_f(r, "wf_prev_latency_s")),
    "device_log_tflops": lambda r: _device(r, 0),
    "device_log_bandwidth": lambda r: _device(r, 1),
    "device_log_memory": lambda r: _device(r, 2),
    "has_device_spec": lambda r: _present(_device(r, 0)),
}


def numeric_row(row: Row, names: Sequence[str]) -> list[float]:
    """The named features of one request (``row``: column name -> its value).

    Raises:
        KeyError: For a feature without a scalar form (use ``numeric_matrix``).
        InputError: A value no float64 holds, naming the column.
    """
    return [SCALAR_FEATURES[name](row) for name in names]
