"""Pick one of a few live replicas with the ``tail_aware`` router, from forecasts only.

The real hooks (AIBrix, LiteLLM, Ray Serve) see candidates as a list with a load
count each (requests running or waiting) and get, from tailcast, a quantile
forecast of this request's latency on each candidate. :func:`tail_aware_choice`
reasons as :class:`~scheduler_hooks.routing.TailAwareRouter` does, over a view built
from that: each candidate has its own forecast row (so its runtime state and device
type both count), and its outstanding requests are unknown requests of the same
served model (their work follows the candidate's ``background`` row, started now:
elapsed times are not known to a gateway). With the router's default shared
percentiles that view has a closed form (one inverse transform per candidate); with
independent percentiles a :class:`~scheduler_hooks.ForecastBook` over the candidates
feeds the router's Monte Carlo.

>>> levels = [0.1, 0.5, 0.9]
>>> rows = np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])
>>> tail_aware_choice(levels, rows, load=[3, 0], slots=1)  # same speed: the idle one
1
>>> tail_aware_choice(levels, rows * [[0.1], [1.0]], load=[3, 0], slots=1)  # 10x faster
0
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from core.quantiles import ppf_rows
from scheduler_hooks._book import ForecastBook
from scheduler_hooks._state import ReplicaState
from scheduler_hooks.routing import RoutingContext, TailAwareRouter
from scheduler_hooks.routing._tail_aware import Percentiles

F64 = npt.NDArray[np.float64]
_TINY = float(np.nextafter(0.0, 1.0))

#: Outstanding requests modelled per candidate by the Monte Carlo (``"independent"``).
MAX_MODELED = 32


class _GatewayBook(ForecastBook):
    """A book for one decision: the new request (id 0) and the candidates' outstanding ones.

    Outstanding requests (ids ``1..N``, candidate by candidate) never move, so only
    their own candidate's row is drawn, all at once (one vectorized inverse-transform
    per candidate instead of one per request); :meth:`samples` answers that row on
    every device index. Their elapsed time is unknown (0), so :meth:`remaining` is
    their full draw.
    """

    def __init__(
        self,
        levels: Sequence[float] | F64,
        own: F64,
        bg: F64,
        counts: Sequence[int],
        s: int,
        seed: int,
    ) -> None:
        super().__init__(levels, lambda ids: np.stack([own] * len(ids)), samples=s, seed=seed)
        rng = np.random.default_rng(seed)
        n = sum(counts)
        self._u = rng.uniform(_TINY, 1.0, (n + 1, s))
        self._own = ppf_rows(self.levels, own, self._u[0], lower=0.0)  # (C, S)
        rows: list[F64] = []
        for i, k in enumerate(counts):
            if k:
                flat = ppf_rows(
                    self.levels, bg[i : i + 1], self._u[1 + len(rows) :][:k].ravel(), lower=0.0
                )
                rows.extend(flat.reshape(k, s))
        self._bg = rows

    def uniforms(self, request: int) -> F64:
        """The request's random percentiles ``(S,)``."""
        u: F64 = self._u[request]
        return u

    def samples(self, request: int) -> F64:
        """Draws ``(C, S)``; an outstanding request's row is its own candidate's on every index."""
        if request == 0:
            return self._own
        row = self._bg[request - 1]
        # a stride-0 view (cheaper than np.broadcast_to on this hot path)
        return np.ndarray(
            (self._own.shape[0], row.shape[0]), np.float64, buffer=row, strides=(0, row.strides[0])
        )

    def remaining(self, requests: Sequence[int], devices: Sequence[int], done: F64) -> F64:
        """Full draws of the outstanding requests (their elapsed time is taken as 0)."""
        if not requests:
            return np.zeros((0, self.n_samples))
        return np.stack([self._bg[r - 1] for r in requests])


def tail_aware_choice(
    levels: Sequence[float] | F64,
    own: F64,
    load: Sequence[int],
    slots: int | Sequence[int] = 1,
    *,
    background: F64 | None = None,
    quantile: float = 0.95,
    samples: int = 128,
    seed: int = 0,
    percentiles: Percentiles = "shared",
) -> int:
    """Index of the candidate where the request's ``quantile`` completion time is smallest.

    With ``percentiles="shared"`` (the router's default) every request's service is
    taken at the same percentile, and a gateway's outstanding requests on a candidate
    all share its ``background`` forecast, so FCFS on ``s`` slots has a closed form:
    with ``n`` outstanding requests started now, the new one starts after
    ``floor(n / s)`` rounds of the background's ``quantile`` and its completion is
    ``floor(n / s) * Q_bg(quantile) + Q_own(quantile)``: no sampling, no cap on
    ``n``, ``O(C K)``. ``"independent"`` runs the Monte Carlo of
    :class:`~scheduler_hooks.routing.TailAwareRouter` over a gateway book (at most
    :data:`MAX_MODELED` outstanding requests per candidate).

    Args:
        levels: Quantile levels of the forecasts ``(K,)``, increasing in (0, 1).
        own: This request's latency quantiles on each candidate, seconds ``(C, K)``.
        load: Requests running or waiting on each candidate ``(C,)``.
        slots: Requests each candidate serves at once (one value for all, or ``(C,)``).
        background: Latency quantiles of an outstanding request on each candidate
            ``(C, K)``; default ``own``.
        quantile: The level minimised (P95 by default).
        samples: Monte Carlo draws (``"independent"`` only).
        seed: Seed of the random percentiles (``"independent"`` only).
        percentiles: ``"shared"`` or ``"independent"`` (see above).

    Raises:
        ValueError: Shapes disagree, there is no candidate, or an option is unknown.
    """
    own = np.asarray(own, dtype=np.float64)
    c = own.shape[0]
    if c == 0 or own.ndim != 2 or len(load) != c:
        raise ValueError(f"need (C, K) forecasts and C loads, got {own.shape} and {len(load)}")
    bg = own if background is None else np.asarray(background, dtype=np.float64)
    per = [slots] * c if isinstance(slots, int) else list(slots)
    if len(per) != c:
        raise ValueError(f"need one slot count or C of them, got {len(per)} for {c} candidates")
    router = TailAwareRouter(quantile, percentiles)  # checks both options
    if percentiles == "shared":
        grid = np.asarray(levels, dtype=np.float64)
        at = np.array([quantile])
        rounds = np.array(
            [max(int(n), 0) // max(int(s), 1) for n, s in zip(load, per, strict=True)]
        )
        done = (
            rounds * ppf_rows(grid, bg, at, lower=0.0)[:, 0]
            + ppf_rows(grid, own, at, lower=0.0)[:, 0]
        )
        return int(np.argmin(done))
    counts = [min(max(int(n), 0), MAX_MODELED) for n in load]
    book = _GatewayBook(levels, own, bg, counts, samples, seed)
    replicas: list[ReplicaState] = []
    next_id = 1
    for i, n in enumerate(counts):
        ids = list(range(next_id, next_id + n))
        next_id += n
        s = max(int(per[i]), 1)
        replicas.append(
            ReplicaState(
                device=i,
                slots=s,
                running=ids[:s],
                started=[0.0] * len(ids[:s]),
                queue=deque(ids[s:]),
            )
        )
    ctx = RoutingContext(now=0.0, rng=np.random.default_rng(seed), book=book)
    return router.choose(0, replicas, ctx)
