"""``least_loaded``: fewest outstanding requests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from scheduler_hooks._state import ReplicaState
from scheduler_hooks.routing._base import Router, RoutingContext, argmin_first


class LeastLoadedRouter(Router):
    """The replica with the fewest outstanding requests per slot (ties: the first).

    Dividing by ``slots`` makes a 4-slot replica with 4 requests as loaded as a 1-slot
    replica with one; device speed is not considered (that is what forecasts add).

    >>> import numpy as np
    >>> one = ReplicaState(0, running=[1])
    >>> reps = [one, ReplicaState(0, slots=2, running=[2]), ReplicaState(1)]
    >>> LeastLoadedRouter().choose(9, reps, RoutingContext(0.0, np.random.default_rng(0)))
    2
    """

    name: ClassVar[str] = "least_loaded"

    def choose(self, request: int, replicas: Sequence[ReplicaState], ctx: RoutingContext) -> int:
        """See :meth:`Router.choose`."""
        return argmin_first([r.outstanding / r.slots for r in replicas])
