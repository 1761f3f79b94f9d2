"""Quantile forecasts: the currency every tailcast component trades in.

A :class:`QuantileForecast` is a distribution given by K quantiles. Between the
given levels the quantile function is linear in the level; beyond them the tails
are exponential, with the scale that continues the outermost segment, so

* ``ppf`` is defined for every level in (0, 1), is non-decreasing, and passes
  through every given (level, value) pair;
* ``cdf`` is its right-continuous inverse; ``cdf(ppf(q)) == q`` wherever the
  quantile function is strictly increasing;
* the mean is finite and has a closed form.

``lower`` optionally bounds the support from below (0 for latencies): the left
tail is clipped there, which puts a probability mass on ``lower`` when the
extrapolated tail would cross it.

Example:
    >>> f = QuantileForecast(levels=(0.1, 0.5, 0.9), values=(1.0, 2.0, 4.0))
    >>> float(f.ppf(0.5)), float(f.cdf(3.0))
    (2.0, 0.7)
    >>> round(float(f.ppf(0.99)), 3)
    6.861
    >>> round(f.mean(), 3)
    2.362
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self, overload

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.quantiles import cdf_rows, mean_rows, ppf_rows

FloatArray = npt.NDArray[np.float64]


class QuantileForecast(BaseModel):
    """A distribution given by quantiles.

    Attributes:
        levels: Quantile levels, strictly increasing, each in (0, 1); at least two.
        values: The quantile at each level (e.g. seconds), non-decreasing.
        lower: Optional lower bound of the support (e.g. 0.0 for latencies).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    levels: tuple[float, ...] = Field(min_length=2)
    values: tuple[float, ...] = Field(min_length=2)
    lower: float | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        lv, vs = np.asarray(self.levels), np.asarray(self.values)
        if lv.shape != vs.shape:
            raise ValueError(f"{len(self.levels)} levels but {len(self.values)} values")
        if not (np.all(np.isfinite(lv)) and np.all(np.isfinite(vs))):
            raise ValueError("levels and values must be finite")
        if lv[0] <= 0.0 or lv[-1] >= 1.0:
            raise ValueError("levels must lie strictly inside (0, 1)")
        if np.any(np.diff(lv) <= 0):
            raise ValueError("levels must be strictly increasing")
        if np.any(np.diff(vs) < 0):
            raise ValueError("values must be non-decreasing (quantiles cannot cross)")
        if self.lower is not None and vs[0] < self.lower:
            raise ValueError(f"values must be >= lower ({vs[0]} < {self.lower})")
        return self

    # --- arrays for the row-wise math in core.quantiles ----------------------------
    def _levels(self) -> FloatArray:
        return np.asarray(self.levels, dtype=np.float64)

    def _values(self) -> FloatArray:
        return np.asarray(self.values, dtype=np.float64)[None, :]

    # --- quantile function -------------------------------------------------------
    @overload
    def ppf(self, q: float) -> float: ...
    @overload
    def ppf(self, q: Sequence[float] | FloatArray) -> FloatArray: ...
    def ppf(self, q: float | Sequence[float] | FloatArray) -> float | FloatArray:
        """Quantile function.

        Args:
            q: Level(s) in (0, 1).

        Returns:
            The value(s) below which a draw falls with probability ``q``; a float for a
            scalar ``q``, else an array of ``q``'s shape.

        Raises:
            ValueError: If a level is outside (0, 1).
        """
        qa = np.asarray(q, dtype=np.float64)
        out = ppf_rows(self._levels(), self._values(), qa.reshape(-1), self.lower)[0]
        out = out.reshape(qa.shape)
        return float(out) if out.ndim == 0 else out

    # --- distribution function -----------------------------------------------------
    @overload
    def cdf(self, x: float) -> float: ...
    @overload
    def cdf(self, x: Sequence[float] | FloatArray) -> FloatArray: ...
    def cdf(self, x: float | Sequence[float] | FloatArray) -> float | FloatArray:
        """Cumulative distribution function, P(X <= x).

        Right-continuous: on a flat stretch of the quantile function (several levels
        sharing one value) it returns the highest of those levels.

        Args:
            x: Value(s), in the forecast's unit.

        Returns:
            Probabilities in [0, 1], a float for a scalar ``x``.
        """
        xa = np.asarray(x, dtype=np.float64)
        out = cdf_rows(self._levels(), self._values(), xa.reshape(-1), self.lower)[0]
        out = out.reshape(xa.shape)
        return float(out) if out.ndim == 0 else out

    # --- moments and sampling ---------------------------------------------------
    def mean(self) -> float:
        """Expected value (closed form over the linear body and exponential tails)."""
        return float(mean_rows(self._levels(), self._values(), self.lower)[0])

    def sample(self, n: int, rng: np.random.Generator) -> FloatArray:
        """Draw ``n`` values by inverse-transform sampling.

        Args:
            n: Number of draws.
            rng: The random generator (pass a seeded one for reproducibility).

        Returns:
            Array of shape ``(n,)``.
        """
        u = rng.uniform(np.nextafter(0.0, 1.0), 1.0, size=n)
        return np.asarray(self.ppf(u), dtype=np.float64)

    def quantiles(self, levels: Sequence[float]) -> dict[float, float]:
        """Map each requested level to its value: ``{level: ppf(level)}``."""
        vals = self.ppf(np.asarray(levels, dtype=np.float64))
        return {float(q): float(v) for q, v in zip(levels, vals, strict=True)}
