"""Goodness of fit of PIT values against Uniform(0, 1): Kolmogorov-Smirnov, Anderson-Darling.

Pure functions over a window of ``u`` values. Under a calibrated forecast ``u`` is
Uniform(0, 1); a slower service pushes ``u`` towards 1, a faster one towards 0.

Example:
    >>> d, p = ks_uniform(np.linspace(0.005, 0.995, 100))
    >>> round(d, 3), p > 0.99
    (0.005, True)
    >>> d, p = ks_uniform(np.full(50, 0.95))
    >>> round(d, 2), p < 1e-20
    (0.95, True)
    >>> shifted = np.linspace(0.005, 0.995, 200) ** 0.7  # KS distance 0.134
    >>> [f"{ks_uniform(shifted, tol)[1]:.1e}" for tol in (0.0, 0.05, 0.15)]
    ['1.4e-03', '1.1e-01', '1.0e+00']
    >>> a2, p = ad_uniform(np.linspace(0.005, 0.995, 100))
    >>> a2 < 0.1, p > 0.99
    (True, True)
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def ks_distance(u: npt.ArrayLike) -> float:
    """Kolmogorov-Smirnov distance ``sup |F_n(x) - x|`` of ``u`` from Uniform(0, 1)."""
    x = np.sort(np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0))
    n = x.shape[0]
    if n == 0:
        return 0.0
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(max(np.max(i / n - x), np.max(x - (i - 1) / n)))


def ks_uniform(u: npt.ArrayLike, tolerance: float = 0.0) -> tuple[float, float]:
    """One-sample KS test of "``u`` is within ``tolerance`` of Uniform(0, 1)".

    With ``tolerance = 0`` this is the classical two-sided KS test. With a tolerance
    ``eps`` the null hypothesis is that the true distribution of ``u`` is at KS distance
    at most ``eps`` from uniform (a mildly miscalibrated but usable forecast): then
    ``sup |F_n - F| >= D - eps`` by the triangle inequality, so ``P(KS_n >= D - eps)``
    is a valid (conservative) p-value. This keeps a long calibrated-enough stream from
    alarming just because ``n`` grows, while a real shift still alarms quickly.

    Args:
        u: PIT values in [0, 1].
        tolerance: The KS distance from uniform that is still acceptable, in [0, 1).

    Returns:
        ``(distance, p_value)``, exact KS tail (scipy's ``kstwo``); an empty window
        gives ``(0.0, 1.0)``.
    """
    from scipy.stats import kstwo  # type: ignore[import-untyped]

    x = np.asarray(u, dtype=np.float64)
    if x.shape[0] == 0:
        return 0.0, 1.0
    d = ks_distance(x)
    excess = d - tolerance
    return d, 1.0 if excess <= 0 else float(kstwo.sf(excess, x.shape[0]))


def _ad_inf_cdf(z: float) -> float:
    """Limiting distribution of the AD statistic (Marsaglia & Marsaglia 2004, ``ADinf``)."""
    if z <= 0:
        return 0.0
    if z < 2:
        poly = (
            2.00012
            + (0.247105 - (0.0649821 - (0.0347962 - (0.011672 - 0.00168691 * z) * z) * z) * z) * z
        )
        return math.exp(-1.2337141 / z) / math.sqrt(z) * poly
    inner = 1.0776 - (2.30695 - (0.43424 - (0.082433 - (0.008056 - 0.0003146 * z) * z) * z) * z) * z
    return math.exp(-math.exp(inner))


def ad_uniform(u: npt.ArrayLike) -> tuple[float, float]:
    """Anderson-Darling test of ``u`` against Uniform(0, 1) (tail-sensitive).

    Returns:
        ``(A2, p_value)`` with the asymptotic p-value (accurate for windows of a few
        dozen and more). An empty window gives ``(0.0, 1.0)``.
    """
    x = np.sort(np.asarray(u, dtype=np.float64))
    n = x.shape[0]
    if n == 0:
        return 0.0, 1.0
    eps = 1e-12
    x = np.clip(x, eps, 1.0 - eps)
    i = np.arange(1, n + 1, dtype=np.float64)
    a2 = -n - float(np.sum((2 * i - 1) * (np.log(x) + np.log1p(-x[::-1])))) / n
    return a2, float(min(1.0, max(0.0, 1.0 - _ad_inf_cdf(a2))))
