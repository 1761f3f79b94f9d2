"""One request's numeric features on floats equal the vectorized ones, case by case."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InputError
from core.predictor import ALL_FEATURES
from core.predictor._numeric import FEATURES, numeric_matrix
from core.predictor._scalar import SCALAR_FEATURES, numeric_row

NAMES = tuple(FEATURES)
NUMBER_FIELDS = (
    "input_tokens",
    "cached_tokens",
    "step",
    "num_running",
    "num_waiting",
    "kv_cache_util",
    "prefill_tokens_in_flight",
    "decode_tokens_in_flight",
    "output_tokens",
    "ep_completions",
    "ep_median_tokens_per_s",
    "ep_median_latency_s",
    "wf_prev_output_tokens",
    "wf_prev_latency_s",
)
numbers = st.one_of(
    st.none(),
    st.integers(min_value=-(10**6), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 0.0, -0.0, 1, -1]),
)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=0.0)


def _check(row: dict[str, Any]) -> None:
    cols = {k: [v] for k, v in row.items()}
    vector = numeric_matrix(cols, NAMES, 1)[0].tolist()
    scalar = numeric_row(dict(row), NAMES)
    for name, a, b in zip(NAMES, vector, scalar, strict=True):
        assert _same(a, b), (name, row, a, b)


def test_every_feature_has_a_scalar_form() -> None:
    assert set(SCALAR_FEATURES) == set(FEATURES)
    assert set(ALL_FEATURES) <= set(SCALAR_FEATURES)


@settings(max_examples=300, deadline=None)
@given(
    values=st.fixed_dictionaries(dict.fromkeys(NUMBER_FIELDS, numbers)),
    device=st.one_of(st.none(), st.sampled_from(["h100-sxm", "mi300x", "l4", "tpu-x", ""])),
    prompt=st.one_of(st.none(), st.text(max_size=30)),
)
def test_scalar_and_vectorized_features_agree(
    values: dict[str, Any], device: str | None, prompt: str | None
) -> None:
    with np.errstate(all="ignore"):
        _check({**values, "device": device, "prompt": prompt})


@pytest.mark.parametrize("absent", ["device", "prompt", "input_tokens", "cached_tokens"])
def test_absent_columns_agree(absent: str) -> None:
    row: dict[str, Any] = {"input_tokens": 800, "cached_tokens": 100, "device": "l4"}
    row["prompt"] = "hello"
    del row[absent]
    _check(row)


def test_a_value_no_float_holds_is_the_same_error() -> None:
    with pytest.raises(InputError, match="input_tokens: a value is too large"):
        numeric_matrix({"input_tokens": [10**400]}, ("log_input_tokens",), 1)
    with pytest.raises(InputError, match="input_tokens: a value is too large"):
        numeric_row({"input_tokens": 10**400}, ("log_input_tokens",))
