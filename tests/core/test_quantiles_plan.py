"""``ppf_rows`` with its remembered level plan answers what the direct formulas give."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.quantiles import ppf_rows, tail_scales


def _direct(levels: np.ndarray, values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The interpolation rules written out, with nothing remembered between calls."""
    k = len(levels)
    seg = np.clip(np.searchsorted(levels, q, side="right") - 1, 0, k - 2)
    t = np.clip((q - levels[seg]) / (levels[seg + 1] - levels[seg]), 0.0, 1.0)
    out = values[:, seg] + t * (values[:, seg + 1] - values[:, seg])
    s_left, s_right = tail_scales(levels, values)
    left, right = q < levels[0], q > levels[-1]
    out[:, left] = values[:, :1] - s_left[:, None] * (np.log(levels[0]) - np.log(q[left]))
    out[:, right] = values[:, -1:] + s_right[:, None] * np.log((1 - levels[-1]) / (1 - q[right]))
    return np.asarray(out, dtype=np.float64)


levels_st = st.lists(st.floats(0.001, 0.999), min_size=2, max_size=7, unique=True).map(
    lambda xs: np.array(sorted(xs))
)
q_st = st.lists(st.floats(1e-6, 1 - 1e-6), min_size=1, max_size=6).map(np.array)


@settings(max_examples=200, deadline=None)
@given(levels=levels_st, q=q_st, seed=st.integers(0, 1000))
def test_the_plan_gives_the_direct_answer_every_call(
    levels: np.ndarray, q: np.ndarray, seed: int
) -> None:
    if np.any(np.diff(levels) <= 0):
        return
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.uniform(0.0, 3.0, size=(4, len(levels))), axis=1)
    for _ in range(2):  # the second call reads the remembered plan
        np.testing.assert_allclose(ppf_rows(levels, values, q), _direct(levels, values, q))


def test_the_plan_is_not_shared_mutable_state() -> None:
    levels = np.array([0.1, 0.5, 0.9])
    values = np.array([[1.0, 2.0, 4.0]])
    first = ppf_rows(levels, values, np.array([0.05, 0.5, 0.95]))
    first[:] = -1.0  # a caller writing into its answer changes nothing remembered
    again = ppf_rows(levels, values, np.array([0.05, 0.5, 0.95]))
    assert (again > 0).all()
    with pytest.raises(ValueError, match="strictly inside"):
        ppf_rows(levels, values, np.array([1.0]))
