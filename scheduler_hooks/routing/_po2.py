"""``po2``: power of two choices on queue length."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from scheduler_hooks._state import ReplicaState
from scheduler_hooks.routing._base import Router, RoutingContext


class PowerOfTwoRouter(Router):
    """Draw two distinct replicas at random; take the one with fewer outstanding requests.

    Outstanding = running + waiting. Ties go to the first drawn.

    >>> import numpy as np
    >>> from collections import deque
    >>> reps = [ReplicaState(0, queue=deque([1, 2])), ReplicaState(0), ReplicaState(0)]
    >>> PowerOfTwoRouter().choose(9, reps, RoutingContext(0.0, np.random.default_rng(1)))
    1
    """

    name: ClassVar[str] = "po2"

    def choose(self, request: int, replicas: Sequence[ReplicaState], ctx: RoutingContext) -> int:
        """See :meth:`Router.choose`."""
        if len(replicas) == 1:
            return 0
        a, b = (int(x) for x in ctx.rng.choice(len(replicas), size=2, replace=False))
        return b if replicas[b].outstanding < replicas[a].outstanding else a
