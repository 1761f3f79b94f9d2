"""Coverage of a quantile with a binomial test, on PIT values.

The observed value is at or below the forecast's ``level`` quantile exactly when
``u = F(observed) <= level``, so coverage needs nothing but ``u``. The test accepts
coverage inside ``level +- tolerance`` and is exact (binomial tails, two-sided by
doubling the smaller tail).

Example:
    >>> cov, p = coverage_test(np.r_[np.full(90, 0.5), np.full(10, 0.95)], 0.9, 0.03)
    >>> cov, p
    (0.9, 1.0)
    >>> cov, p = coverage_test(np.r_[np.full(70, 0.5), np.full(30, 0.95)], 0.9, 0.03)
    >>> cov, f"{p:.1e}"
    (0.7, '1.3e-05')
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def coverage_test(u: npt.ArrayLike, level: float, tolerance: float) -> tuple[float, float]:
    """Observed coverage of the ``level`` quantile and the p-value of "coverage is fine".

    Args:
        u: PIT values in [0, 1].
        level: The quantile level, e.g. 0.9.
        tolerance: Half-width of the acceptable coverage band around ``level``.

    Returns:
        ``(coverage, p_value)``; ``p_value`` is 1.0 when the observed coverage is inside
        the band; an empty window gives ``(nan, 1.0)``.
    """
    from scipy.stats import binom  # type: ignore[import-untyped]

    x = np.asarray(u, dtype=np.float64)
    n = int(x.shape[0])
    if n == 0:
        return float("nan"), 1.0
    k = int(np.count_nonzero(x <= level))
    cov = k / n
    lo, hi = max(level - tolerance, 0.0), min(level + tolerance, 1.0)
    if lo <= cov <= hi:
        return cov, 1.0
    tail = float(binom.cdf(k, n, lo)) if cov < lo else float(binom.sf(k - 1, n, hi))
    return cov, min(1.0, 2.0 * tail)
