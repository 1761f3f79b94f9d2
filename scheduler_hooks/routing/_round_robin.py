"""``round_robin``: replicas in turn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from scheduler_hooks._state import ReplicaState
from scheduler_hooks.routing._base import Router, RoutingContext


class RoundRobinRouter(Router):
    """Request ``k`` (counting from 0) goes to replica ``k mod R`` of the candidates.

    >>> import numpy as np
    >>> r, ctx = RoundRobinRouter(), RoutingContext(0.0, np.random.default_rng(0))
    >>> [r.choose(i, [ReplicaState(0)] * 3, ctx) for i in range(4)]
    [0, 1, 2, 0]
    """

    name: ClassVar[str] = "round_robin"

    def __init__(self) -> None:
        self._next = 0

    def choose(self, request: int, replicas: Sequence[ReplicaState], ctx: RoutingContext) -> int:
        """See :meth:`Router.choose`."""
        pick = self._next % len(replicas)
        self._next += 1
        return pick

    def reset(self) -> None:
        """Start again at replica 0."""
        self._next = 0
