"""``tail_aware``: minimise a quantile of the predicted completion time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np

from scheduler_hooks._state import ReplicaState
from scheduler_hooks.routing._base import Router, RoutingContext, argmin_first
from scheduler_hooks.routing._completion import forecast_completion

Percentiles = Literal["shared", "independent"]
"""How the Monte Carlo draws of different requests relate (see :class:`TailAwareRouter`)."""


class TailAwareRouter(Router):
    """The replica where the ``quantile`` of the request's completion time is smallest.

    Completion time on a replica = remaining service of its running requests (drawn
    conditional on elapsed time) and its queue, played out on its slots, plus this
    request's own service on that device type: Monte Carlo over the forecast book's
    draws, with the same random percentiles for every candidate replica.

    ``percentiles="shared"`` (the default, SwarmX's shared random percentiles) also
    shares each draw's percentile between all the requests involved, the queued and
    running ones and the new one: the draws are comonotone, as when the forecasts
    err in the same direction for requests served together (a common cause, such as
    a slow period or a shifted prompt mix). A queue of ``n`` requests then has a
    P95 near the sum of their P95s, so long queues on fast devices are not
    underrated against one request's own spread. ``"independent"`` draws each
    request's percentiles on its own: a queue's spread then shrinks like
    ``sqrt(n)``, and the request's own spread dominates the choice, which sends
    uncertain requests to the fastest devices and lets their queues build up
    (BENCHMARKS.md, routing, compares the two).

    Args:
        quantile: The level minimised, in (0, 1) (default P95).
        percentiles: ``"shared"`` or ``"independent"`` (see above).
    """

    name: ClassVar[str] = "tail_aware"
    needs_forecasts: ClassVar[bool] = True

    def __init__(self, quantile: float = 0.95, percentiles: Percentiles = "shared") -> None:
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
        if percentiles not in ("shared", "independent"):
            raise ValueError(f"percentiles must be 'shared' or 'independent', got {percentiles!r}")
        self.quantile = quantile
        self.percentiles = percentiles

    def choose(self, request: int, replicas: Sequence[ReplicaState], ctx: RoutingContext) -> int:
        """See :meth:`Router.choose`.

        Raises:
            ValueError: ``ctx.book`` is missing.
        """
        if ctx.book is None:
            raise ValueError(f"{self.name} needs forecasts (ctx.book)")
        if self.percentiles == "independent":
            draws = forecast_completion(request, replicas, ctx.book, ctx.now)
            return argmin_first(np.quantile(draws, self.quantile, axis=1))
        # Comonotone draws: a replica's completion is nondecreasing in the shared
        # percentile, so its quantile (linear interpolation, as np.quantile) needs only
        # the two sorted draws around position quantile * (S - 1).
        pos = self.quantile * (ctx.book.n_samples - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, ctx.book.n_samples - 1)
        two = forecast_completion(
            request, replicas, ctx.book, ctx.now, shared=True, columns=(lo, hi)
        )
        return argmin_first(two[:, 0] + (pos - lo) * (two[:, 1] - two[:, 0]))
