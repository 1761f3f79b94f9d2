"""The interface every baseline predictor implements.

A baseline learns quantiles of a target (latency in seconds) from training-frame
columns and predicts them at its own grid :attr:`Baseline.levels`;
:meth:`Baseline.predict_at` reads the predicted quantiles as
:class:`core.QuantileForecast` distributions (bounded below by 0) to give any other
levels, so baselines with different grids can be scored on the same levels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from training.baselines._columns import Columns
from training.metrics import interpolate_quantiles

F64 = npt.NDArray[np.float64]


class NotFittedError(RuntimeError):
    """Raised when a baseline predicts before :meth:`Baseline.fit`."""


def check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """Validate a level grid: strictly increasing, inside (0, 1), at least one level.

    Raises:
        ValueError: If the grid is invalid.
    """
    lv = tuple(float(v) for v in levels)
    if not lv or lv[0] <= 0.0 or lv[-1] >= 1.0 or any(b <= a for a, b in pairwise(lv)):
        raise ValueError(f"levels must be strictly increasing inside (0, 1), got {lv}")
    return lv


def check_target(y: npt.ArrayLike, n: int, *, positive: bool = False) -> F64:
    """The target as float64 of shape ``(n,)``, finite (and > 0 if ``positive``).

    Raises:
        ValueError: On a wrong shape, a non-finite value, or a non-positive one when
            ``positive``; also when ``n == 0`` (nothing to learn from).
    """
    ya = np.asarray(y, dtype=np.float64)
    if ya.shape != (n,):
        raise ValueError(f"y must have shape ({n},) like the columns, got {ya.shape}")
    if n == 0:
        raise ValueError("cannot fit on zero rows")
    if not np.all(np.isfinite(ya)):
        raise ValueError("y must be finite (drop rows without a target first)")
    if positive and np.any(ya <= 0):
        raise ValueError("y must be strictly positive")
    return ya


class Baseline(ABC):
    """A quantile predictor fitted on training-frame columns.

    Attributes:
        name: Short identifier (the key in :data:`training.baselines.BASELINES`).
        levels: The quantile levels :meth:`predict` returns, strictly increasing.
    """

    name: ClassVar[str]
    levels: tuple[float, ...]

    @abstractmethod
    def fit(self, cols: Columns, y: npt.ArrayLike) -> Self:
        """Learn from ``n`` rows.

        Args:
            cols: Training-frame columns, each with ``n`` values.
            y: The target for each row, shape ``(n,)``, in target units (seconds).

        Returns:
            ``self``, fitted.
        """

    @abstractmethod
    def predict(self, cols: Columns) -> F64:
        """Predict quantiles at :attr:`levels`.

        Args:
            cols: Columns of the rows to predict (same names as in :meth:`fit`).

        Returns:
            Shape ``(n, len(levels))``, in target units, each row non-decreasing.

        Raises:
            NotFittedError: Before :meth:`fit`.
        """

    def predict_at(self, cols: Columns, levels: Sequence[float]) -> F64:
        """Predict quantiles at other ``levels``, interpolated/extrapolated from :attr:`levels`.

        Between the native levels the quantile function is linear in the level, beyond
        them it has exponential tails, clipped at 0 (as :class:`core.QuantileForecast`
        with ``lower=0``); see :func:`training.metrics.interpolate_quantiles`.

        Args:
            cols: Columns of the rows to predict.
            levels: Levels wanted, each strictly inside (0, 1).

        Returns:
            Shape ``(n, len(levels))``, in target units.

        Raises:
            ValueError: If the baseline has fewer than two native levels and ``levels``
                differs from them.
        """
        wanted = tuple(float(v) for v in levels)
        q = self.predict(cols)
        if wanted == self.levels:
            return q
        return interpolate_quantiles(q, self.levels, wanted, lower=0.0)

    def _require_fitted(self, *state: Any) -> None:
        if any(s is None for s in state):
            raise NotFittedError(f"{type(self).__name__} must be fitted before predicting")
