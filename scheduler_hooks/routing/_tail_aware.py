"""``tail_aware``: minimise a quantile of the predicted completion time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from scheduler_hooks._state import ReplicaState
from scheduler_hooks.routing._base import Router, RoutingContext, argmin_first
from scheduler_hooks.routing._completion import forecast_completion


class TailAwareRouter(Router):
    """The replica where the ``quantile`` of the request's completion time is smallest.

    Completion time on a replica = remaining service of its running requests (drawn
    conditional on elapsed time) and its queue, played out on its slots, plus this
    request's own service on that device type: Monte Carlo over the forecast book's
    draws, with the same random percentiles for every candidate replica.

    Args:
        quantile: The level minimised, in (0, 1) (default P95).
    """

    name: ClassVar[str] = "tail_aware"
    needs_forecasts: ClassVar[bool] = True

    def __init__(self, quantile: float = 0.95) -> None:
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
        self.quantile = quantile

    def choose(self, request: int, replicas: Sequence[ReplicaState], ctx: RoutingContext) -> int:
        """See :meth:`Router.choose`.

        Raises:
            ValueError: ``ctx.book`` is missing.
        """
        if ctx.book is None:
            raise ValueError(f"{self.name} needs forecasts (ctx.book)")
        draws = forecast_completion(request, replicas, ctx.book, ctx.now)
        return argmin_first(np.quantile(draws, self.quantile, axis=1))
