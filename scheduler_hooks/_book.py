"""Forecast samples with common random numbers: what forecast-driven policies reason over.

A :class:`ForecastBook` turns each request's quantile forecasts (one row of K
quantiles per device type, in seconds of service at nominal speed) into ``S`` Monte
Carlo draws by inverse-transform sampling (:func:`core.quantiles.ppf_rows`). The
draws of one request use ONE vector of uniforms for every device type: the same
random percentiles are shared by every candidate replica (common random numbers), so
comparing replicas compares forecasts, not sampling noise. Different requests get
independent uniforms (seeded by ``(seed, request)``); a policy that wants one
percentile shared by every request in a draw (comonotone draws, as ``tail_aware``
does by default) indexes :meth:`ForecastBook.sorted_samples` by column instead.

>>> import numpy as np
>>> levels = np.array([0.1, 0.5, 0.9])
>>> table = np.array([[[1.0, 2.0, 4.0], [0.5, 1.0, 2.0]]])  # 1 request, 2 devices
>>> book = ForecastBook(levels, lambda ids: table[ids], samples=1000, seed=0)
>>> s = book.samples(0)
>>> s.shape, bool(np.all(s[1] == s[0] / 2))  # same percentiles on both devices
((2, 1000), True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from core.quantiles import ppf_rows, tail_scales

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

ForecastFn = Callable[[I64], F64]
"""Request ids ``(m,)`` -> service-time quantiles ``(m, D, K)`` in seconds, one row per
device type, on the book's level grid."""

_TINY = float(np.nextafter(0.0, 1.0))


class ForecastBook:
    """Per-request Monte Carlo draws of service time on every device type.

    Args:
        levels: The forecasts' quantile levels ``(K,)``, strictly increasing in (0, 1).
        forecast: Quantiles of requests' service times (see :data:`ForecastFn`).
        samples: Draws per request (``S``).
        seed: Seed of the uniforms.
    """

    def __init__(
        self, levels: Sequence[float] | F64, forecast: ForecastFn, samples: int = 256, seed: int = 0
    ) -> None:
        self.levels = np.asarray(levels, dtype=np.float64)
        self.forecast = forecast
        self.n_samples = samples
        self.seed = seed
        self._draws: dict[int, F64] = {}
        self._sorted: dict[int, F64] = {}
        self._uniforms: dict[int, F64] = {}
        self._tails: dict[int, F64] = {}

    def uniforms(self, request: int) -> F64:
        """The request's shared random percentiles ``(S,)`` in (0, 1)."""
        u = self._uniforms.get(request)
        if u is None:
            rng = np.random.default_rng((self.seed, request))
            # Latin hypercube: one draw in each of S equal strata, in random order, so
            # every request's draws cover its distribution evenly (less Monte Carlo
            # noise in a quantile of a sum) while requests stay independent.
            u = (rng.permutation(self.n_samples) + rng.random(self.n_samples)) / self.n_samples
            u = np.clip(u, _TINY, 1.0 - 1e-12)
            self._uniforms[request] = u
        return u

    def samples(self, request: int) -> F64:
        """Draws of the request's service time on every device type, ``(D, S)`` seconds."""
        draws = self._draws.get(request)
        if draws is None:
            q = self.forecast(np.array([request], dtype=np.int64))[0]
            draws = ppf_rows(self.levels, q, self.uniforms(request), lower=0.0)
            self._draws[request] = draws
            self._tails[request] = tail_scales(self.levels, q)[1]
        return draws

    def remaining(self, requests: Sequence[int], devices: Sequence[int], done: F64) -> F64:
        """Draws of the remaining service of running requests, ``(m, S)`` seconds.

        The draws are conditional on the work already done: with the request's draws
        sorted, the ones above ``done`` are resampled with the request's own percentiles.
        When every draw is below ``done`` the forecast's exponential right tail (which is
        memoryless) gives the remaining time.

        Args:
            requests: Running request ids.
            devices: Device type each runs on.
            done: Service already received by each, seconds ``(m,)``.
        """
        m, s = len(requests), self.n_samples
        if m == 0:
            return np.zeros((0, s))
        xs = np.empty((m, s))
        u = np.empty((m, s))
        tails = np.empty(m)
        for row, (r, d) in enumerate(zip(requests, devices, strict=True)):
            xs[row] = self.sorted_samples(r)[d]
            u[row] = self.uniforms(r)
            tails[row] = self._tails[r][d]
        done = np.asarray(done, dtype=np.float64)
        k = (xs <= done[:, None]).sum(axis=1)
        idx = np.minimum(k[:, None] + (u * (s - k)[:, None]).astype(np.int64), s - 1)
        rem = np.take_along_axis(xs, idx, axis=1) - done[:, None]
        for i in np.flatnonzero(done <= 0).tolist():  # nothing ruled out: the own draws
            rem[i] = self.samples(requests[i])[devices[i]] - done[i]
        beyond = k >= s
        if np.any(beyond):
            rem[beyond] = -np.maximum(tails[beyond], 1e-6)[:, None] * np.log(u[beyond])
        return np.maximum(rem, 0.0)

    def sorted_samples(self, request: int) -> F64:
        """The request's draws sorted on every device type, ``(D, S)`` seconds.

        Column ``s`` is then (about) the ``(s + 0.5) / S`` quantile of every request's
        service: indexing all requests' sorted draws by the same column shares one
        percentile between them (comonotone draws).
        """
        rows = self._sorted.get(request)
        if rows is None:
            rows = np.sort(self.samples(request), axis=1)
            self._sorted[request] = rows
        return rows

    def forget(self, request: int) -> None:
        """Drop a finished request's draws (keeps memory flat over long traces)."""
        for cache in (self._draws, self._sorted, self._uniforms, self._tails):
            cache.pop(request, None)
