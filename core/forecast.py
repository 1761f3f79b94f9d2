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

    # --- tail scales -----------------------------------------------------------
    def _left_scale(self) -> float:
        q1, q2 = self.levels[0], self.levels[1]
        return (self.values[1] - self.values[0]) / float(np.log(q2 / q1))

    def _right_scale(self) -> float:
        qa, qb = self.levels[-2], self.levels[-1]
        return (self.values[-1] - self.values[-2]) / float(np.log((1 - qa) / (1 - qb)))

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
        if np.any((qa <= 0) | (qa >= 1)) or np.any(np.isnan(qa)):
            raise ValueError("quantile levels must lie strictly inside (0, 1)")
        lv, vs = np.asarray(self.levels), np.asarray(self.values)
        out = np.interp(qa, lv, vs)
        left, right = qa < lv[0], qa > lv[-1]
        if np.any(left):
            out = np.where(left, vs[0] - self._left_scale() * np.log(lv[0] / qa), out)
        if np.any(right):
            tail = vs[-1] + self._right_scale() * np.log((1 - lv[-1]) / (1 - qa))
            out = np.where(right, tail, out)
        if self.lower is not None:
            out = np.maximum(out, self.lower)
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
        lv, vs = np.asarray(self.levels), np.asarray(self.values)
        # Right-continuous inverse of the piecewise-linear part.
        idx = np.searchsorted(vs, xa, side="right")
        inner = np.clip(idx, 1, len(vs) - 1)
        x0, x1 = vs[inner - 1], vs[inner]
        q0, q1 = lv[inner - 1], lv[inner]
        width = x1 - x0
        frac = np.divide(xa - x0, width, out=np.ones_like(xa), where=width > 0)
        out = np.where(idx >= len(vs), lv[-1], q0 + np.clip(frac, 0.0, 1.0) * (q1 - q0))
        below, above = xa < vs[0], xa >= vs[-1]
        if np.any(below):
            s = self._left_scale()
            with np.errstate(over="ignore", divide="ignore"):
                tail = lv[0] * np.exp(-(vs[0] - xa) / s) if s > 0 else np.zeros_like(xa)
            out = np.where(below, tail, out)
        if np.any(above):
            s = self._right_scale()
            with np.errstate(over="ignore", divide="ignore"):
                tail = 1 - (1 - lv[-1]) * np.exp(-(xa - vs[-1]) / s) if s > 0 else np.ones_like(xa)
            out = np.where(above, tail, out)
        if self.lower is not None:
            out = np.where(xa < self.lower, 0.0, out)
        out = np.clip(out, 0.0, 1.0)
        return float(out) if out.ndim == 0 else out

    # --- moments and sampling ---------------------------------------------------
    def mean(self) -> float:
        """Expected value (closed form over the linear body and exponential tails)."""
        lv, vs = np.asarray(self.levels), np.asarray(self.values)
        body = float(np.sum(np.diff(lv) * (vs[:-1] + vs[1:]) / 2))
        right = float((1 - lv[-1]) * (vs[-1] + self._right_scale()))
        q1, v1, s = float(lv[0]), float(vs[0]), self._left_scale()
        if self.lower is None or s == 0:
            left = q1 * (v1 - s)
        else:
            # Tail clipped at `lower` below q* = q1 * exp(-(v1 - lower) / s).
            qs = q1 * np.exp(-(v1 - self.lower) / s)
            # integral_{qs}^{q1} (v1 - s*ln q1 + s*ln q) dq
            # qs may underflow to 0, where q ln q - q -> 0.
            at_qs = float(qs * np.log(qs) - qs) if qs > 0 else 0.0
            integral = (v1 - s * np.log(q1)) * (q1 - qs) + s * ((q1 * np.log(q1) - q1) - at_qs)
            left = float(self.lower * qs + integral)
        return body + right + left

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
