"""Arrivals of the look-ahead: Poisson, or Poisson bursts when requests come together.

Some traffic arrives in bursts: a client fans out a batch, an agent framework issues
tool calls at once, a trace's timestamps are coarse (Mooncake: 10.8 requests per
instant on average). A Poisson process at the same rate spreads such a burst over
minutes and underrates the queue it builds. :func:`burst_sizes` groups recent arrival
times into bursts; :func:`draw_arrivals` draws the look-ahead's arrivals as a compound
Poisson process (bursts at ``rate / mean size``, sizes resampled from the recent ones)
and, when every recent burst is a single request, exactly the plain Poisson draws.

>>> burst_sizes([0.0, 0.0, 0.0, 5.0, 9.0, 9.0005], gap_s=0.001).tolist()
[3, 1, 2]
>>> rng = np.random.default_rng(0)
>>> arrivals, counts = draw_arrivals(rng, 0.5, 60.0, 4, np.array([4]))
>>> [int(c) % 4 for c in counts]  # whole bursts of 4
[0, 0, 0, 0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def bursts(times: Sequence[float] | F64, gap_s: float) -> tuple[F64, I64]:
    """The bursts in sorted arrival ``times``: runs whose gaps are at most ``gap_s``.

    Args:
        times: Arrival times, seconds, nondecreasing.
        gap_s: Largest gap inside a burst, seconds (0: only identical instants).

    Returns:
        ``(B,)`` start times and ``(B,)`` sizes of the bursts in order (empty for no times).

    >>> starts, sizes = bursts([0.0, 0.0, 0.0, 5.0, 9.0, 9.0005], gap_s=0.001)
    >>> starts.tolist(), sizes.tolist()
    ([0.0, 5.0, 9.0], [3, 1, 2])
    """
    t = np.asarray(times, dtype=np.float64)
    if t.size == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    firsts = np.flatnonzero(np.concatenate([[True], np.diff(t) > gap_s]))
    return t[firsts], np.diff(np.append(firsts, t.size)).astype(np.int64)


def burst_sizes(times: Sequence[float] | F64, gap_s: float) -> I64:
    """Sizes of the bursts in sorted arrival ``times`` (see :func:`bursts`)."""
    return bursts(times, gap_s)[1]


REGULAR_CV = 0.5
"""Gaps between bursts whose coefficient of variation is below this count as regular.

Exponential gaps have CV 1 (the CV of 64 of them has a standard deviation near 0.12);
Mooncake's clumps come at CV 0.00, Azure conv's single requests at 1.12.
"""


def is_regular(gaps: F64, min_gaps: int = 8) -> bool:
    """Whether recent gaps between bursts are regular enough for the renewal model.

    Args:
        gaps: Gaps between burst starts, seconds.
        min_gaps: Fewer gaps than this say nothing (``False``).

    >>> is_regular(np.full(10, 58.4)), is_regular(np.random.default_rng(0).exponential(3.0, 64))
    (True, False)
    """
    g = np.asarray(gaps, dtype=np.float64)
    if g.size < min_gaps or float(g.mean()) <= 0:
        return False
    return float(g.std()) / float(g.mean()) < REGULAR_CV


def draw_renewal(
    rng: np.random.Generator,
    span: float,
    paths: int,
    sizes: I64,
    gaps: F64,
    age: float,
) -> tuple[F64, I64]:
    """Bursts whose spacing is resampled from the recent gaps between bursts (a renewal process).

    A Poisson process lets two bursts land together however regular the real spacing is
    (Mooncake's bursts come every 58.4 s at load 1, gap CV 0.00): the look-ahead then
    prices queues that never form. Here every gap is one of the recent gaps, drawn with
    replacement (their scale is the rate estimate: rescaling them to a rate counted over
    a few minutes moved a 234 s period by tens of seconds at low load), and the first
    burst comes after the residual of a recent gap longer than ``age`` (the time since
    the last burst began), or at once when the burst is overdue. Exponential gaps give
    back a Poisson process.

    Args:
        rng: Generator.
        span: Seconds ahead.
        paths: Sample paths ``P``.
        sizes: Recent burst sizes (at least one).
        gaps: Recent gaps between burst starts, seconds (at least one, positive mean).
        age: Seconds since the last burst began.

    Returns:
        As :func:`draw_arrivals`.

    >>> rng = np.random.default_rng(0)
    >>> times, counts = draw_renewal(rng, 50.0, 2, np.array([5]), np.array([10.0]), 4.0)
    >>> times[0, ::5].tolist(), counts.tolist()  # bursts of 5 every 10 s, the first in 6 s
    ([6.0, 16.0, 26.0, 36.0, 46.0], [25, 25])
    """
    g = np.asarray(gaps, dtype=np.float64)
    later = g[g > age]
    # overdue (no recent gap is longer than the age): the next burst is imminent
    first = later[rng.integers(0, later.size, size=paths)] - age if later.size else np.zeros(paths)
    # enough gaps to pass ``span`` on every path: 3x the mean count, and at most what
    # the shortest gap needs
    width = min(int(np.ceil(3.0 * span / float(g.mean()))) + 32, int(np.ceil(span / g.min())) + 1)
    step = g[rng.integers(0, g.size, size=(paths, width))]
    step[:, 0] = first
    when = np.cumsum(step, axis=1)
    size = sizes[rng.integers(0, sizes.size, size=(paths, width))]
    size[when >= span] = 0
    counts = size.sum(axis=1).astype(np.int64)
    arrivals = np.full((paths, max(int(counts.max()), 1)), np.inf)
    for p in range(paths):
        row = np.repeat(when[p], size[p])
        arrivals[p, : row.size] = row
    return arrivals, counts


def draw_arrivals(
    rng: np.random.Generator, rate: float, span: float, paths: int, sizes: I64 | None = None
) -> tuple[F64, I64]:
    """Arrival times over ``[0, span)`` on each path, sorted, ``inf``-padded: ``((P, K), (P,))``.

    Args:
        rng: Generator (consumed exactly as the plain Poisson draw when no burst is bigger
            than one request).
        rate: Requests per second.
        span: Seconds ahead.
        paths: Sample paths ``P``.
        sizes: Recent burst sizes; ``None``, empty or all ones: Poisson arrivals.

    Returns:
        Arrival times ``(P, K)`` (``K`` at least 1) and the number on each path ``(P,)``.
    """
    if sizes is None or sizes.size == 0 or int(sizes.max()) <= 1:
        counts = rng.poisson(rate * span, size=paths)
        k = max(int(counts.max()), 1)
        arrivals = rng.uniform(0.0, span, size=(paths, k))
        arrivals[np.arange(k)[None, :] >= counts[:, None]] = np.inf
        arrivals.sort(axis=1)
        return arrivals, counts.astype(np.int64)
    bursts = rng.poisson(rate / float(sizes.mean()) * span, size=paths)
    b = max(int(bursts.max()), 1)
    when = rng.uniform(0.0, span, size=(paths, b))
    size = sizes[rng.integers(0, sizes.size, size=(paths, b))]
    size[np.arange(b)[None, :] >= bursts[:, None]] = 0
    counts = size.sum(axis=1).astype(np.int64)
    arrivals = np.full((paths, max(int(counts.max()), 1)), np.inf)
    for p in range(paths):
        row = np.sort(np.repeat(when[p], size[p]))
        arrivals[p, : row.size] = row
    return arrivals, counts
