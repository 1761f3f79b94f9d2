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


def burst_sizes(times: Sequence[float] | F64, gap_s: float) -> I64:
    """Sizes of the bursts in sorted arrival ``times``: runs whose gaps are at most ``gap_s``.

    Args:
        times: Arrival times, seconds, nondecreasing.
        gap_s: Largest gap inside a burst, seconds (0: only identical instants).

    Returns:
        ``(B,)`` burst sizes in order (empty for no times).
    """
    t = np.asarray(times, dtype=np.float64)
    if t.size == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], np.diff(t) > gap_s]))
    return np.diff(np.append(starts, t.size)).astype(np.int64)


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
