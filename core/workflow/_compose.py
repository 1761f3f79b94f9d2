"""Compose per-call distributions into the distribution of a workflow's remaining time.

A workflow (an agentic task) makes ``N`` LLM calls, ``N`` random. Its wall time, as the
call logs record it, runs from the end of call 0 to the end of call ``N - 1``: rounds
``s = 1 .. N - 1``, each the tool run after call ``s - 1`` (``T``) then call ``s``
(``L_s``). After ``k >= 1`` calls have returned and the task has not finished, the
remaining time is the sum of rounds ``k .. N - 1`` and ``N > k``.

:func:`sample` draws that sum by Monte Carlo with *common random numbers*: one
:class:`Draws` (seeded, made once) is reused for every question, so forecasts for
different steps, tasks or models differ only through the model, never through noise.
Calls of one task share a latency factor (a Gaussian copula with correlation ``rho``:
the endpoint's speed and the task's verbosity are common to its calls). Everything is
array lookups on precomputed tables, vectorized over samples and calls.

Exact arithmetic where it is exact: a constant shifts every quantile
(:func:`shift_quantiles`), and the quantiles of a sum of comonotone variables are the
sums of their quantiles (:func:`comonotone_sum`). The point compositions
:func:`sum_of_means` and :func:`sum_of_p90` are the baselines the distributional one is
compared with.

Example:
    >>> z = np.linspace(-4.0, 4.0, 9)
    >>> latency = np.tile(np.exp(0.25 * z), (6, 1))  # every call: log-normal-ish seconds
    >>> tools = np.full(4, 0.5)  # every tool run: 0.5 s
    >>> cdf = np.array([0.0, 0.0, 0.5, 1.0, 1.0])  # N is 3 or 4, evenly
    >>> d = draw(1000, 6, seed=0)
    >>> n, remaining = sample(latency, z, tools, cdf, d, steps_done=0, rho=0.3)
    >>> sorted(set(n.tolist())), round(float(remaining.mean()), 3)
    ([3, 4], 3.881)
    >>> n, remaining = sample(latency, z, tools, cdf, d, steps_done=3, rho=0.3)
    >>> sorted(set(n.tolist())), round(float(remaining.mean()), 3)
    ([4], 1.536)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_BLOCKS = 8  # sample blocks in :func:`sample`


@dataclass(frozen=True)
class Draws:
    """Common random numbers for :func:`sample` (reuse one for every question).

    Attributes:
        count: Uniforms in (0, 1) that pick the call count, shape ``(J,)``; sorted by
            :func:`draw` (samples are exchangeable, and sorted counts let :func:`sample`
            skip the rounds of short tasks), any order is correct.
        shared: Standard normals, the task-wide latency factor, shape ``(J,)``.
        calls: Standard normals, each call's own latency factor, shape ``(J, S)``.
        tools: Uniforms in [0, 1) that pick each tool time, shape ``(J, S)``.
        cache: Table indices derived from the draws, per (correlation, grid) (filled
            by :func:`sample`; the draws themselves never change).
    """

    count: F64
    shared: F64
    calls: F64
    tools: F64
    cache: dict[tuple[float | int, ...], npt.NDArray[np.intp]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def samples(self) -> int:
        """Number of Monte Carlo samples ``J``."""
        return int(self.count.shape[0])

    @property
    def max_calls(self) -> int:
        """Most calls one sample can make ``S``."""
        return int(self.calls.shape[1])


def draw(samples: int, max_calls: int, seed: int = 0) -> Draws:
    """Draw the common random numbers for ``samples`` tasks of up to ``max_calls`` calls.

    Raises:
        ValueError: If ``samples`` or ``max_calls`` is below 1.
    """
    if samples < 1 or max_calls < 1:
        raise ValueError("samples and max_calls must be >= 1")
    rng = np.random.default_rng(seed)
    return Draws(
        count=np.sort(rng.uniform(np.nextafter(0.0, 1.0), 1.0, size=samples)),
        shared=rng.standard_normal(samples),
        calls=rng.standard_normal((samples, max_calls)),
        tools=rng.uniform(0.0, 1.0, size=(samples, max_calls)),
    )


def conditional_cdf(cdf: F64, steps_done: int) -> F64:
    """CDF of the call count given that more than ``steps_done`` calls will be made.

    Args:
        cdf: ``P(N <= n)`` for ``n = 1 .. M``, shape ``(M,)``, ending at 1.
        steps_done: Calls already returned while the task runs (0: not started).

    Returns:
        ``P(N <= n | N > steps_done)``, shape ``(M,)``; all mass on ``steps_done + 1``
        when the model gives that event no probability.

    >>> conditional_cdf(np.array([0.25, 0.5, 1.0]), 1).tolist()
    [0.0, 0.3333333333333333, 1.0]
    """
    if steps_done <= 0:
        return cdf
    m = cdf.shape[0]
    below = float(cdf[min(steps_done, m) - 1])
    if below >= 1.0 - 1e-12:
        out = np.zeros(max(m, steps_done + 1))
        out[steps_done:] = 1.0
        return out[:m] if steps_done < m else out
    out = (cdf - below) / (1.0 - below)
    out[:steps_done] = 0.0
    return np.clip(out, 0.0, 1.0)


def count_quantiles(cdf: F64, levels: F64) -> I64:
    """Call-count quantiles: the least ``n`` with ``P(N <= n) >= level`` (exact).

    >>> count_quantiles(np.array([0.25, 0.5, 1.0]), np.array([0.25, 0.5, 0.9])).tolist()
    [1, 2, 3]
    """
    idx = np.searchsorted(cdf, np.asarray(levels) - 1e-12, side="left")
    return np.asarray(np.minimum(idx, cdf.shape[0] - 1) + 1, dtype=np.int64)


def count_mean(cdf: F64) -> float:
    """Mean call count, ``sum_n P(N >= n)`` (exact)."""
    return float(1.0 + np.sum(1.0 - cdf[:-1]))


def pace(scores: F64, rho: float) -> tuple[float, float]:
    """Posterior of a task's shared latency factor given its completed calls (exact).

    In the copula each call's score is ``z_s = sqrt(rho) S + sqrt(1 - rho) e_s`` with
    ``S`` (the task's pace) and ``e_s`` independent standard normals. Given the scores
    of ``k`` returned calls, ``S`` is normal with precision ``1 + k rho / (1 - rho)``
    and mean ``sqrt(rho) / (1 - rho) * sum(z) / precision``.

    Args:
        scores: Normal scores of the returned calls' latencies (:func:`latency_scores`);
            non-finite ones (calls without a recorded latency) are ignored.
        rho: Correlation of the latencies of one task's calls, in [0, 1).

    Returns:
        ``(mean, sd)`` of ``S``; ``(0.0, 1.0)`` (the prior) without scores or with
        ``rho = 0``.

    >>> pace(np.array([1.0, 1.0, 1.0]), 0.25)
    (1.0, 0.7071067811865475)
    """
    z = np.asarray(scores, dtype=np.float64)
    z = z[np.isfinite(z)]
    k = int(z.size)
    if k == 0 or rho <= 0.0:
        return 0.0, 1.0
    precision = 1.0 + k * rho / (1.0 - rho)
    mean = float(np.sqrt(rho) / (1.0 - rho) * float(z.sum()) / precision)
    return mean, float(1.0 / np.sqrt(precision))


def latency_scores(latency: F64, z_grid: F64, observed: F64) -> F64:
    """Normal scores of observed latencies of calls ``0 .. k - 1`` under their tables.

    Inverts row ``s`` of the latency table (linear between grid points, clipped to the
    grid's ends), so a call exactly at its forecast median scores 0.

    Args:
        latency: Latency (seconds) of call ``s`` at score ``z_grid[g]``, shape ``(S, G)``,
            non-decreasing along ``g``; calls beyond ``S`` use the last row.
        z_grid: Equally spaced normal scores, shape ``(G,)``.
        observed: Latencies (seconds) of calls ``0 .. k - 1``, shape ``(k,)``; NaN for a
            call without a recorded latency (its score is NaN).

    >>> z = np.linspace(-2.0, 2.0, 5)
    >>> table = np.tile(np.exp(z), (4, 1))
    >>> latency_scores(table, z, np.array([np.nan, 1.0, np.e, 100.0])).round(6).tolist()
    [nan, 0.0, 1.0, 2.0]
    """
    y = np.asarray(observed, dtype=np.float64)
    if y.size == 0:
        return np.zeros(0)
    rows = latency[np.minimum(np.arange(y.size), latency.shape[0] - 1)]
    g = z_grid.shape[0]
    hi = np.clip((rows < y[:, None]).sum(axis=1), 1, g - 1)
    lo = hi - 1
    at = np.arange(y.size)
    x0, x1 = rows[at, lo], rows[at, hi]
    frac = np.clip((y - x0) / np.where(x1 > x0, x1 - x0, 1.0), 0.0, 1.0)
    out = z_grid[lo] + frac * (z_grid[hi] - z_grid[lo])
    return np.asarray(np.where(np.isfinite(y), out, np.nan), dtype=np.float64)


def sample(
    latency: F64,
    z_grid: F64,
    tools: F64,
    cdf: F64,
    draws: Draws,
    steps_done: int = 0,
    rho: float = 0.0,
    pending_tool: F64 | None = None,
    shared: tuple[float, float] = (0.0, 1.0),
) -> tuple[I64, F64]:
    """Monte Carlo samples of the call count and of the remaining time.

    Args:
        latency: Latency (seconds) of call ``s`` at normal score ``z_grid[g]``, shape
            ``(S, G)``; row ``s`` is call ``s`` (row 0 is never used). Rows beyond
            ``S`` reuse the last row.
        z_grid: Equally spaced normal scores, shape ``(G,)``.
        tools: Tool-time quantiles (seconds) at equally spaced levels, shape ``(H,)``.
        cdf: Call-count CDF ``P(N <= n)``, ``n = 1 .. M``.
        draws: Common random numbers (``draws.max_calls >= M``).
        steps_done: Calls returned so far while the task runs (0: not started).
        rho: Correlation of the latencies of one task's calls, in [0, 1).
        pending_tool: Tool-time quantiles for the tool run now in flight (the last
            returned call's command), shape ``(H',)``; default ``tools``.
        shared: ``(mean, sd)`` of the task's shared latency factor (:func:`pace` of
            the returned calls); the default is its prior, ``(0, 1)``.

    Returns:
        ``(n, remaining)``: call counts (int, ``(J,)``) and remaining seconds ``(J,)``.

    Raises:
        ValueError: If the draws are too short for the count distribution.
    """
    m = cdf.shape[0]
    if draws.max_calls < max(m, steps_done + 1):
        raise ValueError(f"draws cover {draws.max_calls} calls; need {max(m, steps_done + 1)}")
    cond = conditional_cdf(cdf, steps_done)
    n = np.minimum(np.searchsorted(cond, draws.count, side="left"), cond.shape[0] - 1) + 1
    first = max(steps_done, 1)
    width = int(n.max()) - first
    if width <= 0:
        return n.astype(np.int64), np.zeros(draws.samples)
    cols = slice(first, first + width)
    rows = latency.shape[0]
    ti = _tool_indices(draws, tools.shape[0])[:, cols]
    if shared == (0.0, 1.0):
        flat = _latency_indices(draws, rho, z_grid, rows)[:, cols]
    else:
        flat = _scored_indices(draws, rho, shared, z_grid, rows, cols)
    pending = None
    if pending_tool is not None and steps_done >= 1:
        hp = pending_tool.shape[0]
        pi = np.minimum((draws.tools[:, first] * hp).astype(np.intp), hp - 1)
        pending = pending_tool[pi] - tools[ti[:, 0]]
    live = n - first  # rounds of each sample still to come
    remaining = np.zeros(draws.samples)
    table = latency.ravel()
    # Blocks of samples, each summed only up to its own longest task: the draws' count
    # uniforms are sorted, so a block's counts are close and little work is wasted.
    edges = np.linspace(0, draws.samples, min(_BLOCKS, draws.samples) + 1).astype(np.intp)
    for a, b in itertools.pairwise(edges):
        w = int(live[a:b].max())
        if w <= 0:
            continue
        rounds = table.take(flat[a:b, :w])
        rounds += tools.take(ti[a:b, :w])
        if pending is not None:
            rounds[:, 0] += pending[a:b]
        rounds[np.arange(w)[None, :] >= live[a:b, None]] = 0.0
        remaining[a:b] = rounds.sum(axis=1)
    return n.astype(np.int64), remaining


def _grid_indices(z: F64, z_grid: F64, offsets: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Flat table index: nearest grid point of each score plus its row's offset."""
    g = z_grid.shape[0]
    step = (z_grid[-1] - z_grid[0]) / (g - 1)
    z -= z_grid[0]
    z *= 1.0 / step
    np.rint(z, out=z)
    np.clip(z, 0, g - 1, out=z)
    out = z.astype(np.intp)
    out += offsets[None, :]
    return out


def _latency_indices(draws: Draws, rho: float, z_grid: F64, rows: int) -> npt.NDArray[np.intp]:
    """Flat latency-table indices of every (sample, call) at the prior pace, cached.

    Call ``s`` of sample ``j`` reads row ``min(s, rows - 1)`` of the latency table at the
    grid point nearest its copula score ``sqrt(rho) shared_j + sqrt(1 - rho) calls_js``.
    """
    g = z_grid.shape[0]
    key = (rho, float(z_grid[0]), float(z_grid[-1]), g, rows)
    hit = draws.cache.get(key)
    if hit is None:
        z = np.sqrt(rho) * draws.shared[:, None] + np.sqrt(1.0 - rho) * draws.calls
        hit = _grid_indices(z, z_grid, np.minimum(np.arange(draws.max_calls), rows - 1) * g)
        draws.cache[key] = hit
    return hit


def _scored_indices(
    draws: Draws,
    rho: float,
    shared: tuple[float, float],
    z_grid: F64,
    rows: int,
    cols: slice,
) -> npt.NDArray[np.intp]:
    """Like :func:`_latency_indices` for the calls ``cols`` at a known pace (not cached).

    The shared factor of sample ``j`` is ``mean + sd * shared_j``.
    """
    a, b = np.sqrt(rho), np.sqrt(1.0 - rho)
    mean, sd = shared
    z = draws.calls[:, cols] * b
    z += (a * mean + a * sd * draws.shared)[:, None]
    offsets = np.minimum(np.arange(draws.max_calls)[cols], rows - 1) * z_grid.shape[0]
    return _grid_indices(z, z_grid, offsets)


def _tool_indices(draws: Draws, tool_points: int) -> npt.NDArray[np.intp]:
    """Tool-table index of every (sample, call), cached on ``draws``."""
    key = (-1, tool_points)
    hit = draws.cache.get(key)
    if hit is None:
        hit = np.minimum((draws.tools * tool_points).astype(np.intp), tool_points - 1)
        draws.cache[key] = hit
    return hit


def shift_quantiles(quantiles: F64, offset: float) -> F64:
    """Quantiles of ``X + offset`` from those of ``X`` (exact).

    >>> shift_quantiles(np.array([1.0, 2.0]), 10.0).tolist()
    [11.0, 12.0]
    """
    return np.asarray(quantiles, dtype=np.float64) + offset


def comonotone_sum(quantiles: F64) -> F64:
    """Quantiles of the sum of comonotone variables (exact): column sums.

    Args:
        quantiles: Each variable's quantiles at shared levels, shape ``(n, K)``.

    >>> comonotone_sum(np.array([[1.0, 2.0], [3.0, 5.0]])).tolist()
    [4.0, 7.0]
    """
    return np.asarray(np.asarray(quantiles, dtype=np.float64).sum(axis=0), dtype=np.float64)


def _rounds_sum(per_round: F64, first: int, rounds: float) -> float:
    """Sum of ``rounds`` (fractional) per-round values starting at round ``first``."""
    rows = np.minimum(np.arange(first, first + int(np.ceil(rounds)) + 1), per_round.shape[0] - 1)
    cum = np.concatenate([[0.0], np.cumsum(per_round[rows])])
    return float(np.interp(rounds, np.arange(cum.shape[0]), cum))


def sum_of_means(latency_mean: F64, tool_mean: float, cdf: F64, steps_done: int = 0) -> float:
    """Point composition: expected number of remaining rounds times per-round means.

    Args:
        latency_mean: Mean latency of call ``s``, seconds, shape ``(S,)``.
        tool_mean: Mean tool time, seconds.
        cdf: Call-count CDF.
        steps_done: Calls returned so far.

    >>> sum_of_means(np.full(5, 2.0), 0.5, np.array([0.0, 0.0, 1.0]))
    5.0
    """
    first = max(steps_done, 1)
    rounds = max(count_mean(conditional_cdf(cdf, steps_done)) - first, 0.0)
    return _rounds_sum(latency_mean + tool_mean, first, rounds)


def sum_of_p90(latency_p90: F64, tool_p90: float, cdf: F64, steps_done: int = 0) -> float:
    """Point composition: expected number of remaining rounds times per-round P90s.

    This is the exact P90 of the remaining time if every call and tool run were
    comonotone (:func:`comonotone_sum`) and the call count were its mean.

    >>> sum_of_p90(np.full(5, 3.0), 1.0, np.array([0.0, 0.5, 1.0]))
    6.0
    """
    first = max(steps_done, 1)
    rounds = max(count_mean(conditional_cdf(cdf, steps_done)) - first, 0.0)
    return _rounds_sum(latency_p90 + tool_p90, first, rounds)
