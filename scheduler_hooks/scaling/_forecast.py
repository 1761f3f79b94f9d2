"""``forecast``: replicas so that the predicted tail of latency and of queued work meets the SLO."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from scheduler_hooks.scaling._base import Scaler, ScalingView


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (Erlang C).

    Args:
        servers: ``c``.
        offered: Offered load ``a = lambda / mu`` in servers (< ``servers``).

    >>> round(erlang_c(1, 0.5), 3), round(erlang_c(2, 1.0), 3)
    (0.5, 0.333)
    """
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    rho = offered / servers
    return blocking / (1.0 - rho * (1.0 - blocking))


class ForecastScaler(Scaler):
    """Size the cluster from forecast service-time distributions, not from utilisation.

    Two needs, the larger wins:

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
        quantile: Level of the latency and backlog draws that must meet it.
        max_recent: Recent requests whose draws describe the service (the latest ones).
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
    ) -> None:
        super().__init__(min_replicas, max_replicas, cooldown_s, stabilization_s)
        self.slo_s, self.quantile, self.max_recent = slo_s, quantile, max_recent

    def target(self, view: ScalingView) -> int:
        """``max(arrival need, backlog need)`` replicas.

        Raises:
            ValueError: ``view.book`` is missing.
        """
        book = view.book
        if book is None:
            raise ValueError("the forecast scaler needs forecasts (view.book)")
        return max(self._arrival_need(view), self._backlog_need(view))

    def _arrival_need(self, view: ScalingView) -> int:
        book = view.book
        assert book is not None
        recent = list(view.recent)[-self.max_recent :]
        if not recent or view.arrival_rate <= 0:
            return self.min_replicas
        service = np.concatenate([book.samples(r)[view.device] for r in recent])
        mean = float(service.mean())
        cs2 = float(service.var()) / mean**2 if mean > 0 else 0.0
        offered = view.arrival_rate * mean
        rng = np.random.default_rng(0)
        waits_u, wait_e = rng.random(len(service)), rng.exponential(1.0, len(service))
        first = max(self.min_replicas, math.floor(offered / view.slots) + 1)
        for n in range(first, self.max_replicas + 1):
            servers = n * view.slots
            p_wait = erlang_c(servers, offered)
            rate = (servers / mean - view.arrival_rate) * 2.0 / (1.0 + cs2)
            latency = service + np.where(waits_u < p_wait, wait_e / rate, 0.0)
            if float(np.quantile(latency, self.quantile)) <= self.slo_s:
                return n
        return self.max_replicas

    def _backlog_need(self, view: ScalingView) -> int:
        book = view.book
        assert book is not None
        reqs: list[int] = []
        devs: list[int] = []
        done: list[float] = []
        queued = np.zeros(book.n_samples)
        for rep in view.replicas:
            reqs.extend(rep.running)
            devs.extend([rep.device] * len(rep.running))
            done.extend(view.now - t for t in rep.started)
            for q in rep.queue:
                queued += book.samples(q)[rep.device]
        total = queued + book.remaining(reqs, devs, np.asarray(done, dtype=np.float64)).sum(axis=0)
        return math.ceil(float(np.quantile(total, self.quantile)) / (self.slo_s * view.slots))
