"""Row-wise quantile-distribution math: many forecasts on one level grid at once.

The single source of the interpolation rules :class:`core.QuantileForecast` uses
(linear in the level between given quantiles, exponential tails continuing the
outermost segments, optional lower bound), vectorized over ``n`` forecasts that
share a level grid, so a service can answer a batch without a Python loop.

Arrays: ``levels`` (K,), strictly increasing in (0, 1); ``values`` (n, K), rows
non-decreasing.

>>> lv = np.array([0.1, 0.5, 0.9])
>>> v = np.array([[1.0, 2.0, 4.0], [2.0, 4.0, 8.0]])
>>> ppf_rows(lv, v, np.array([0.5, 0.7])).tolist()
[[2.0, 3.0], [4.0, 6.0]]
>>> cdf_rows(lv, v, np.array([3.0])).round(3).tolist()
[[0.7], [0.3]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def tail_scales(levels: F64, values: F64) -> tuple[F64, F64]:
    """Scales (n,) of the left and right exponential tails."""
    left = (values[:, 1] - values[:, 0]) / np.log(levels[1] / levels[0])
    right = (values[:, -1] - values[:, -2]) / np.log((1 - levels[-2]) / (1 - levels[-1]))
    return left, right


@dataclass(frozen=True, slots=True)
class _PpfPlan:
    """What :func:`ppf_rows` needs of the level grid and the asked levels alone."""

    seg: npt.NDArray[np.intp]
    t: F64
    left: npt.NDArray[np.bool_]
    right: npt.NDArray[np.bool_]
    left_log: F64  # log(levels[0]) - log(q) of the left-tail levels
    right_log: F64  # log((1 - levels[-1]) / (1 - q)) of the right-tail levels


@lru_cache(maxsize=256)
def _ppf_plan(levels_key: tuple[float, ...], q_key: tuple[float, ...]) -> _PpfPlan:
    levels, q = np.asarray(levels_key), np.asarray(q_key)
    if np.any((q <= 0) | (q >= 1)) or np.any(np.isnan(q)):
        raise ValueError("quantile levels must lie strictly inside (0, 1)")
    k = len(levels)
    seg = np.clip(np.searchsorted(levels, q, side="right") - 1, 0, k - 2)
    t = np.clip((q - levels[seg]) / (levels[seg + 1] - levels[seg]), 0.0, 1.0)
    left, right = q < levels[0], q > levels[-1]
    # log(a / b) as log(a) - log(b): a level like 5e-308 would overflow the ratio.
    left_log = np.log(levels[0]) - np.log(q[left])
    right_log = np.log((1 - levels[-1]) / (1 - q[right]))
    parts = (seg, t, left, right, left_log, right_log)
    for part in parts:
        part.flags.writeable = False  # shared by every call with these levels
    return _PpfPlan(*parts)


def ppf_rows(levels: F64, values: F64, q: F64, lower: float | None = None) -> F64:
    """Quantiles of every row at levels ``q`` (m,), shape (n, m).

    What depends on ``levels`` and ``q`` alone (segments, weights, tail logs) is
    computed once per pair and remembered: a service asks the same levels every call.

    Raises:
        ValueError: If a level is outside (0, 1).
    """
    q = np.asarray(q, dtype=np.float64)
    grid = np.asarray(levels, dtype=np.float64)
    plan = _ppf_plan(tuple(grid.tolist()), tuple(q.tolist()))
    seg = plan.seg
    out = values[:, seg] + plan.t * (values[:, seg + 1] - values[:, seg])
    if plan.left_log.size or plan.right_log.size:
        s_left, s_right = tail_scales(grid, values)
        if plan.left_log.size:
            out[:, plan.left] = values[:, :1] - s_left[:, None] * plan.left_log
        if plan.right_log.size:
            out[:, plan.right] = values[:, -1:] + s_right[:, None] * plan.right_log
    if lower is not None:
        out = np.maximum(out, lower)
    return np.asarray(out, dtype=np.float64)


def cdf_rows(levels: F64, values: F64, x: F64, lower: float | None = None) -> F64:
    """P(X <= x), right-continuous, shape (n, m).

    Args:
        levels: The level grid (K,).
        values: Quantiles (n, K).
        x: Points shared by every row (m,), or per row (n, m).
        lower: Optional lower bound of the support.
    """
    x = np.asarray(x, dtype=np.float64)
    n, k = values.shape
    xb = np.broadcast_to(x, (n, x.shape[-1]))
    idx = (values[:, :, None] <= xb[:, None, :]).sum(axis=1)  # searchsorted, side="right"
    inner = np.clip(idx, 1, k - 1)
    x0 = np.take_along_axis(values, inner - 1, axis=1)
    x1 = np.take_along_axis(values, inner, axis=1)
    q0, q1 = levels[inner - 1], levels[inner]
    width = x1 - x0
    frac = np.divide(xb - x0, width, out=np.ones_like(width), where=width > 0)
    out = np.where(idx >= k, levels[-1], q0 + np.clip(frac, 0.0, 1.0) * (q1 - q0))
    s_left, s_right = tail_scales(levels, values)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        below_tail = np.where(
            s_left[:, None] > 0, levels[0] * np.exp(-(values[:, :1] - xb) / s_left[:, None]), 0.0
        )
        above_tail = np.where(
            s_right[:, None] > 0,
            1 - (1 - levels[-1]) * np.exp(-(xb - values[:, -1:]) / s_right[:, None]),
            1.0,
        )
    out = np.where(xb < values[:, :1], below_tail, out)
    out = np.where(xb >= values[:, -1:], above_tail, out)
    if lower is not None:
        out = np.where(xb < lower, 0.0, out)
    return np.asarray(np.clip(out, 0.0, 1.0), dtype=np.float64)


def mean_rows(levels: F64, values: F64, lower: float | None = None) -> F64:
    """Expected value of every row (closed form), shape (n,).

    One row (a single forecast, the hot path) is computed with Python floats by
    :func:`_mean_one` (the same formulas, a few microseconds instead of some twenty
    array operations) unless its support starts below ``lower``.
    """
    if values.shape[0] == 1 and (lower is None or values[0, 0] >= lower):
        return np.array([_mean_one(levels.tolist(), values[0].tolist(), lower)])
    body = np.sum(np.diff(levels) * (values[:, :-1] + values[:, 1:]) / 2, axis=1)
    s_left, s_right = tail_scales(levels, values)
    right = (1 - levels[-1]) * (values[:, -1] + s_right)
    q1, v1 = levels[0], values[:, 0]
    left = q1 * (v1 - s_left)
    if lower is not None:
        # The left tail is clipped at `lower` below q* = q1 exp(-(v1 - lower) / s).
        clipped = s_left > 0
        s = np.where(clipped, s_left, 1.0)
        with np.errstate(over="ignore", under="ignore"):
            qs = q1 * np.exp(-(v1 - lower) / s)
        with np.errstate(divide="ignore", invalid="ignore"):
            at_qs = np.where(qs > 0, qs * np.log(qs) - qs, 0.0)  # q ln q - q -> 0 at 0
        integral = (v1 - s * np.log(q1)) * (q1 - qs) + s * ((q1 * np.log(q1) - q1) - at_qs)
        left = np.where(clipped, lower * qs + integral, left)
    return np.asarray(body + right + left, dtype=np.float64)


def _mean_one(levels: list[float], row: list[float], lower: float | None) -> float:
    """:func:`mean_rows` of one row whose first value is at least ``lower``.

    >>> round(_mean_one([0.1, 0.5, 0.9], [1.0, 2.0, 4.0], 0.0), 6)
    2.37456
    """
    body = sum((levels[i + 1] - levels[i]) * (row[i] + row[i + 1]) / 2 for i in range(len(row) - 1))
    s_left = _divide(row[1] - row[0], math.log(levels[1] / levels[0]))
    s_right = _divide(row[-1] - row[-2], math.log((1 - levels[-2]) / (1 - levels[-1])))
    right = (1 - levels[-1]) * (row[-1] + s_right)
    q1, v1 = levels[0], row[0]
    if lower is None or s_left <= 0:
        return body + right + q1 * (v1 - s_left)
    qs = q1 * math.exp(-(v1 - lower) / s_left)  # v1 >= lower: no overflow
    at_qs = qs * math.log(qs) - qs if qs > 0 else 0.0
    log_q1 = math.log(q1)
    integral = (v1 - s_left * log_q1) * (q1 - qs) + s_left * ((q1 * log_q1 - q1) - at_qs)
    return body + right + lower * qs + integral


def _divide(num: float, den: float) -> float:
    """``num / den`` as NumPy divides floats: +-inf or NaN for a zero ``den``, no raise.

    Two levels a grid tells apart can still give the same ``1 - level`` (0.001 and
    0.0010000000000000002), so a tail's log ratio can be exactly 0.

    >>> _divide(1.0, 0.0), _divide(-1.0, 0.0)
    (inf, -inf)
    """
    if den != 0.0:
        return num / den
    if num == 0.0 or math.isnan(num):
        return math.nan
    return math.copysign(math.inf, num) * math.copysign(1.0, den)
