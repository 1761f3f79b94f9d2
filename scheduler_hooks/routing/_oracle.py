"""``oracle``: knows every request's true service time; minimises true completion time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from scheduler_hooks._state import ReplicaState
from scheduler_hooks.routing._base import Router, RoutingContext, argmin_first
from scheduler_hooks.routing._completion import slot_completion


class OracleRouter(Router):
    """The replica where the request would truly finish first (greedy, per request).

    Uses the true end times of running requests and the true service times (at each
    replica's actual speed) of queued ones and of the request: the limit of what any
    forecast can buy a greedy router. It is not a global optimum (it does not plan
    for later arrivals).
    """

    name: ClassVar[str] = "oracle"
    needs_truth: ClassVar[bool] = True

    def choose(self, request: int, replicas: Sequence[ReplicaState], ctx: RoutingContext) -> int:
        """See :meth:`Router.choose`.

        Raises:
            ValueError: ``ctx.truth`` is missing.
        """
        truth = ctx.truth
        if truth is None:
            raise ValueError("oracle needs the true service times (ctx.truth)")
        times = []
        for rep in replicas:
            free = np.zeros((rep.slots, 1))
            for k, r in enumerate(rep.running):
                free[k, 0] = max(truth.end(r) - ctx.now, 0.0)
            queued = [np.array([truth.work(q, rep.device) / rep.speed]) for q in rep.queue]
            own = np.array([truth.work(request, rep.device) / rep.speed])
            times.append(float(slot_completion(free, queued, own)[0]))
        return argmin_first(times)
