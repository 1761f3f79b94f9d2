"""``forecast``: replicas so that the predicted tail of latency and of queued work meets the SLO."""

from __future__ import annotations

from collections import deque
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt

from scheduler_hooks._book import ForecastBook
from scheduler_hooks._state import ReplicaState
from scheduler_hooks.scaling._arrivals import (
    bursts,
    draw_arrivals,
    draw_renewal,
    is_regular,
)
from scheduler_hooks.scaling._base import Scaler, ScalingView
from scheduler_hooks.scaling._lookahead import F64, Lookahead
from scheduler_hooks.scaling._steady import arrival_need, backlog_need

ARRIVAL_MODELS = ("auto", "poisson", "renewal")
"""The look-ahead's arrival models (``ForecastScaler(arrival_model=...)``)."""


class ForecastScaler(Scaler):
    """Size the cluster from forecast service-time distributions, not from utilisation.

    **Look-ahead rule** (``horizon_s`` set, normally the cold-start delay; what the
    simulator benchmarks): the fewest replicas whose predicted ``quantile`` of latency
    meets ``slo_s``, from a Monte Carlo of the next ``horizon_s + window_s`` seconds
    (:class:`~scheduler_hooks.scaling._lookahead.Lookahead`, ``paths`` sample paths,
    common random numbers across candidate counts): every slot starts from the draws of
    its running request's remaining work (conditional on the time already served) and
    of its replica's queued requests' work; Poisson arrivals at the rate of the last
    ``rate_window_s`` seconds (Poisson *bursts* when recent requests came together,
    sizes resampled from the last bursts seen: :mod:`~scheduler_hooks.scaling._arrivals`)
    bring draws of recent requests' forecasts, each served on
    the slot where it would finish first for its draw on that slot's device type
    (replicas added or cold-starting are of the scale-up type); replicas added now
    serve from ``horizon_s`` on, replicas already cold-starting from when they were
    asked for plus ``horizon_s``, and a smaller count drops replicas at once in the
    order the cluster would (``view.scale_down``: the least loaded, or cold-starting
    ones first and then the newest or least loaded). Arrivals before ``horizon_s``
    count only for candidates that do not add replicas (a scale-up cannot help them).
    Scale-downs still go through the base class's stabilization window and cooldown.

    **Steady-state rule** (``horizon_s=None``, the KEDA/Ray hooks' plan, which know a
    rate and one forecast but no queues; :mod:`~scheduler_hooks.scaling._steady`): two
    needs, the larger wins:

    * **arrivals**: the fewest replicas whose predicted ``quantile`` (P95) of latency
      for the recent arrival rate meets ``slo_s``. Service draws are the forecast
      book's draws of the recent requests on the scale-up device type; the wait is the
      M/G/c approximation of Allen-Cunneen (Erlang C probability of waiting, an
      exponential wait scaled by ``(1 + cs^2) / 2`` with ``cs^2`` the squared coefficient
      of variation of the forecast service), so heavy-tailed forecasts ask for more
      headroom than a utilisation threshold would;
    * **backlog**: the ``quantile`` of the total outstanding work (remaining service of
      running requests plus queued requests, Monte Carlo over the forecast draws) must
      drain within ``slo_s`` on the replicas' slots.

    Args:
        slo_s: Latency objective, seconds.
        quantile: Level of the latency (and backlog) draws that must meet it.
        max_recent: Recent requests whose draws describe the service (the latest ones).
        horizon_s: Look-ahead: seconds until a replica asked for now serves (``None``:
            the steady-state rule).
        window_s: Look-ahead: seconds after ``horizon_s`` whose arrivals are judged.
        paths: Look-ahead: Monte Carlo paths (at most the book's draws per request).
        seed: Look-ahead: seed of the arrival draws (mixed with the time).
        rate_window_s: Look-ahead: window of the arrival-rate estimate, seconds.
        burst_gap_s: Look-ahead: arrivals this close (seconds) form one burst; the
            sizes of the last ``max_recent`` bursts are resampled (needs
            ``view.recent_arrivals``; without them, Poisson arrivals).
        arrival_model: Look-ahead: ``poisson`` (bursts at exponential gaps),
            ``renewal`` (gaps resampled from the last ``max_recent`` gaps between
            bursts, the first one conditional on the time since the last burst:
            :func:`~scheduler_hooks.scaling._arrivals.draw_renewal`; for regular
            bursts, e.g. batch clients on a timer; Poisson until three bursts are
            seen) or ``auto`` (renewal while the last gaps are regular, at least 8
            with a coefficient of variation below 0.5, else Poisson).
    """

    name: ClassVar[str] = "forecast"
    needs_forecasts: ClassVar[bool] = True

    def __init__(
        self,
        min_replicas: int = 1,
        max_replicas: int = 64,
        cooldown_s: float = 30.0,
        stabilization_s: float = 300.0,
        slo_s: float = 60.0,
        quantile: float = 0.95,
        max_recent: int = 64,
        horizon_s: float | None = None,
        window_s: float = 60.0,
        paths: int = 64,
        seed: int = 0,
        rate_window_s: float = 300.0,
        burst_gap_s: float = 0.001,
        arrival_model: Literal["auto", "poisson", "renewal"] = "auto",
    ) -> None:
        if arrival_model not in ARRIVAL_MODELS:
            raise ValueError(
                f"arrival_model must be one of {', '.join(ARRIVAL_MODELS)}, got {arrival_model!r}"
            )
        super().__init__(min_replicas, max_replicas, cooldown_s, stabilization_s)
        self.slo_s, self.quantile, self.max_recent = slo_s, quantile, max_recent
        self.horizon_s, self.window_s, self.paths, self.seed = horizon_s, window_s, paths, seed
        self.rate_window_s, self.burst_gap_s = rate_window_s, burst_gap_s
        self.arrival_model = arrival_model
        self._times: deque[float] = deque(maxlen=32 * max_recent)
        self._ids: deque[int] = deque(maxlen=max_recent)
        self._ready: list[float] = []
        self._first: float | None = None
        self._seen: set[int] = set()
        self._arrived: deque[tuple[float, int]] = deque()
        self._pool: dict[int, F64] = {}
        self._pool_book: ForecastBook | None = None

    def desired(self, view: ScalingView) -> int:
        """As :meth:`Scaler.desired`; remembers when the replicas it adds will serve."""
        before = len(view.replicas) + view.pending
        want = super().desired(view)
        if want > before and self.horizon_s is not None:
            self._ready.extend([view.now + self.horizon_s] * (want - before))
        return want

    def target(self, view: ScalingView) -> int:
        """The look-ahead need with ``horizon_s`` set, else ``max(arrival need, backlog need)``.

        Raises:
            ValueError: ``view.book`` is missing.
        """
        book = view.book
        if book is None:
            raise ValueError("the forecast scaler needs forecasts (view.book)")
        if self.horizon_s is not None:
            return self._lookahead_need(view, self.horizon_s)
        return max(
            arrival_need(
                view,
                self.slo_s,
                self.quantile,
                self.max_recent,
                self.min_replicas,
                self.max_replicas,
            ),
            backlog_need(view, self.slo_s, self.quantile),
        )

    def _lookahead_need(self, view: ScalingView, horizon_s: float) -> int:
        """The fewest replicas whose look-ahead latency quantile meets the SLO."""
        la = self._lookahead(view, horizon_s)
        current = len(view.replicas) + view.pending
        candidates = list(range(self.min_replicas, self.max_replicas + 1))
        if len(candidates) > 16:  # a wide range: bisection, one candidate at a time
            lo, hi = self.min_replicas, self.max_replicas
            while lo < hi:
                mid = (lo + hi) // 2
                if la.latency_quantile([mid], current, self.quantile)[0] <= self.slo_s:
                    hi = mid
                else:
                    lo = mid + 1
            return lo
        tails = la.latency_quantile(candidates, current, self.quantile)
        meets = np.flatnonzero(tails <= self.slo_s)
        return candidates[int(meets[0])] if len(meets) else self.max_replicas

    def _lookahead(self, view: ScalingView, horizon_s: float) -> Lookahead:
        """Sample paths of the next ``horizon_s + window_s`` seconds from the forecast draws."""
        book = view.book
        assert book is not None
        paths = min(self.paths, book.n_samples)
        if view.scale_down == "newest":
            order = list(view.replicas)[::-1]
        else:
            order = sorted(view.replicas, key=lambda r: r.outstanding)
        serving = np.stack([self._slot_free(view, rep, paths) for rep in order])
        future = sorted(t for t in self._ready if t > view.now)
        self._ready = future[len(future) - view.pending :] if view.pending else []
        ready = [t - view.now for t in self._ready]
        ready = [horizon_s] * (view.pending - len(ready)) + ready
        pending = np.broadcast_to(
            np.asarray(ready, dtype=np.float64)[:, None, None], (len(ready), view.slots, paths)
        )
        rng = np.random.default_rng((self.seed, int(view.now * 1000)))
        span = horizon_s + self.window_s
        rate = self._rate(view)
        arrivals, counts = self._arrivals(rng, rate, span, paths, view.now)
        k = arrivals.shape[1]
        # the view's window describes the current service; when it is empty (a quiet
        # spell between bursts) the last requests seen still say what will come
        recent = list(view.recent)[-self.max_recent :] or list(self._ids)
        if recent:
            pool = np.concatenate([self._draws(view, r) for r in recent], axis=1)  # (D, N*S)
            work = pool[:, rng.integers(0, pool.shape[1], size=(paths, k))]
        else:
            counts[:] = 0
            work = np.zeros((1, paths, k))  # no arrival is drawn: counts are 0
        devices = np.array([rep.device for rep in order], dtype=np.int64)
        return Lookahead(
            serving,
            np.array(pending),
            arrivals,
            counts,
            work,
            horizon_s,
            devices=devices,
            scale_device=view.device,
            pending_first=view.scale_down != "least_loaded",
        )

    def _arrivals(
        self, rng: np.random.Generator, rate: float, span: float, paths: int, now: float
    ) -> tuple[F64, npt.NDArray[np.int64]]:
        """The look-ahead's arrival times and counts (see ``arrival_model``)."""
        starts, sizes = bursts(self._times, self.burst_gap_s)
        starts, sizes = starts[-self.max_recent - 1 :], sizes[-self.max_recent :]
        if self.arrival_model != "poisson":
            gaps = np.diff(starts)
            usable = gaps.size >= 2 and float(gaps.mean()) > 0
            if self.arrival_model == "auto":
                usable = is_regular(gaps)
            if usable:
                age = max(now - float(starts[-1]), 0.0)
                return draw_renewal(rng, span, paths, sizes, gaps, age)
        return draw_arrivals(rng, rate, span, paths, sizes)

    def _draws(self, view: ScalingView, request: int) -> F64:
        """A recent request's service draws on every device type ``(D, S)``.

        Kept after the book forgets the request; dropped when the book is swapped.
        """
        if view.book is not self._pool_book:
            self._pool, self._pool_book = {}, view.book
        draws = self._pool.get(request)
        if draws is None:
            assert view.book is not None
            draws = self._pool[request] = view.book.samples(request)
        if len(self._pool) > 4 * self.max_recent:
            keep = set(self._ids)
            self._pool = {r: d for r, d in self._pool.items() if r in keep}
        return draws

    def _rate(self, view: ScalingView) -> float:
        """Arrivals per second over the last ``rate_window_s`` (requests first seen in ``recent``).

        Until the scaler has watched for ``window_s`` it divides by ``window_s``: the view's
        rate over a few seconds (e.g. at time 0) says nothing.
        """
        if self._first is None:
            self._first = view.now
        new = [r for r in view.recent if r not in self._seen]
        self._seen.update(new)
        self._ids.extend(new)
        if len(view.recent_arrivals) == len(view.recent):
            fresh = set(new)
            at = sorted(
                t for r, t in zip(view.recent, view.recent_arrivals, strict=True) if r in fresh
            )
            self._times.extend(at)
        self._arrived.append((view.now, len(new)))
        while self._arrived and self._arrived[0][0] <= view.now - self.rate_window_s:
            self._arrived.popleft()
        if len(self._seen) > 4 * len(view.recent) + 4096:  # keep memory flat
            self._seen = set(view.recent)
        watched = max(view.now - self._first, self.window_s)
        return sum(c for _, c in self._arrived) / min(watched, self.rate_window_s)

    @staticmethod
    def _slot_free(view: ScalingView, rep: ReplicaState, paths: int) -> F64:
        """When each slot of ``rep`` frees up, per path ``(slots, paths)``, seconds from now."""
        book = view.book
        assert book is not None
        free = np.zeros((rep.slots, paths))
        if rep.running:
            done = np.asarray(rep.elapsed(view.now), dtype=np.float64)
            rest = book.remaining(rep.running, [rep.device] * len(rep.running), done)
            free[: len(rep.running)] = rest[:, :paths]
        cols = np.arange(paths)
        for q in rep.queue:
            j = np.argmin(free, axis=0)
            free[j, cols] += book.samples(q)[rep.device][:paths]
        return free
