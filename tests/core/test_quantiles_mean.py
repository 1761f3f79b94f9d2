"""``mean_rows`` of one row (Python floats) answers what the vectorized rows give."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.quantiles import mean_rows

levels_st = st.lists(st.floats(0.001, 0.999), min_size=2, max_size=9, unique=True).map(
    lambda xs: np.array(sorted(xs))
)


@st.composite
def rows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float | None]:
    levels = draw(levels_st)
    steps = draw(st.lists(st.floats(0.0, 50.0), min_size=len(levels), max_size=len(levels)))
    row = np.cumsum(steps)  # non-decreasing, flat segments (zero tail scales) included
    lower = draw(st.one_of(st.none(), st.floats(-10.0, 1.0).map(lambda f: f * row[0])))
    return levels, row, lower


@settings(max_examples=300, deadline=None)
@given(rows())
# levels that differ but whose 1 - level does not: a right tail of zero log ratio
@example((np.array([0.001, 0.0010000000000000002]), np.array([0.0, 0.0]), None))
@example((np.array([0.001, 0.0010000000000000002]), np.array([0.0, 1.0]), 0.0))
def test_one_row_is_the_mean_of_the_same_row_in_a_batch(
    case: tuple[np.ndarray, np.ndarray, float | None],
) -> None:
    levels, row, lower = case
    alone = mean_rows(levels, row[None, :], lower)
    in_batch = mean_rows(levels, np.stack([row, row + 1.0]), lower)  # vectorized rows
    assert alone.shape == (1,)
    np.testing.assert_allclose(alone[0], in_batch[0], rtol=1e-9, atol=1e-9)


def test_a_row_starting_below_the_lower_bound_takes_the_vectorized_rows() -> None:
    levels = np.array([0.1, 0.5, 0.9])
    row = np.array([[-1.0, 2.0, 4.0]])
    expected = mean_rows(levels, np.vstack([row, row]), 0.0)[0]
    assert mean_rows(levels, row, 0.0)[0] == expected
