"""``predicted_mean``: least predicted mean completion time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from scheduler_hooks._state import ReplicaState
from scheduler_hooks.routing._base import Router, RoutingContext, argmin_first
from scheduler_hooks.routing._completion import forecast_completion


class PredictedMeanRouter(Router):
    """The replica where the request's expected completion time is smallest.

    The expectation is taken over the same forecast draws :class:`TailAwareRouter`
    uses (remaining work of running requests, queued work, the request's own
    service), so the two routers differ only in the statistic they minimise.
    """

    name: ClassVar[str] = "predicted_mean"
    needs_forecasts: ClassVar[bool] = True

    def choose(self, request: int, replicas: Sequence[ReplicaState], ctx: RoutingContext) -> int:
        """See :meth:`Router.choose`.

        Raises:
            ValueError: ``ctx.book`` is missing.
        """
        if ctx.book is None:
            raise ValueError(f"{self.name} needs forecasts (ctx.book)")
        draws = forecast_completion(request, replicas, ctx.book, ctx.now)
        return argmin_first(draws.mean(axis=1))
