"""``forecast``: replicas so that the predicted tail of the queued work meets the SLO."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from scheduler_hooks.scaling._base import Scaler, ScalingView


class ForecastScaler(Scaler):
    """Size the cluster from forecast work, not from utilisation.

    Two needs, the larger wins:

    * **load**: arrivals per second x the mean forecast service of recent requests on
      the scale-up device type, over ``target_utilization`` x slots per replica;
    * **backlog**: the ``quantile`` (P95) of the total outstanding work (remaining
      service of running requests plus queued requests, Monte Carlo over the forecast
      draws) must drain within ``slo_s`` on the replicas' slots.

    Args:
        slo_s: Latency objective, seconds.
        quantile: Level of the outstanding-work draws that must meet it.
        target_utilization: Utilisation the load term aims for.
    """

    name: ClassVar[str] = "forecast"
    needs_forecasts: ClassVar[bool] = True

    def __init__(
        self,
        min_replicas: int = 1,
        max_replicas: int = 64,
        cooldown_s: float = 30.0,
        slo_s: float = 60.0,
        quantile: float = 0.95,
        target_utilization: float = 0.75,
    ) -> None:
        super().__init__(min_replicas, max_replicas, cooldown_s)
        self.slo_s, self.quantile, self.target_utilization = slo_s, quantile, target_utilization

    def target(self, view: ScalingView) -> int:
        """``max(load need, backlog need)`` replicas.

        Raises:
            ValueError: ``view.book`` is missing.
        """
        book = view.book
        if book is None:
            raise ValueError("the forecast scaler needs forecasts (view.book)")
        mean_work = (
            float(np.mean([book.samples(r)[view.device].mean() for r in view.recent]))
            if view.recent
            else 0.0
        )
        load = view.arrival_rate * mean_work / (self.target_utilization * view.slots)
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
        backlog = float(np.quantile(total, self.quantile)) / (self.slo_s * view.slots)
        return max(math.ceil(load), math.ceil(backlog))
