"""``random``: a uniformly random replica."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from scheduler_hooks._state import ReplicaState
from scheduler_hooks.routing._base import Router, RoutingContext


class RandomRouter(Router):
    """Each request goes to a replica drawn uniformly from ``ctx.rng``.

    >>> import numpy as np
    >>> ctx = RoutingContext(now=0.0, rng=np.random.default_rng(0))
    >>> RandomRouter().choose(0, [ReplicaState(0), ReplicaState(0), ReplicaState(1)], ctx)
    2
    """

    name: ClassVar[str] = "random"

    def choose(self, request: int, replicas: Sequence[ReplicaState], ctx: RoutingContext) -> int:
        """See :meth:`Router.choose`."""
        return int(ctx.rng.integers(len(replicas)))
