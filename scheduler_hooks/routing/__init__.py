"""Routers: pick a replica for each request.

One policy per module, all behind :class:`Router` (``_base``). By CLI name:
``random``, ``round_robin``, ``po2`` (power of two choices on queue length),
``least_loaded``, ``predicted_mean`` (least expected completion time from forecasts),
``tail_aware`` (least P95, or any quantile, of predicted completion time, Monte Carlo
with shared random percentiles) and ``oracle`` (true service times).
"""

from __future__ import annotations

from typing import Any

from scheduler_hooks.routing._base import Router, RoutingContext, Truth, argmin_first
from scheduler_hooks.routing._completion import forecast_completion, slot_completion
from scheduler_hooks.routing._least_loaded import LeastLoadedRouter
from scheduler_hooks.routing._oracle import OracleRouter
from scheduler_hooks.routing._po2 import PowerOfTwoRouter
from scheduler_hooks.routing._predicted_mean import PredictedMeanRouter
from scheduler_hooks.routing._random import RandomRouter
from scheduler_hooks.routing._round_robin import RoundRobinRouter
from scheduler_hooks.routing._tail_aware import TailAwareRouter

ROUTERS: dict[str, type[Router]] = {
    cls.name: cls
    for cls in (
        RandomRouter,
        RoundRobinRouter,
        PowerOfTwoRouter,
        LeastLoadedRouter,
        PredictedMeanRouter,
        TailAwareRouter,
        OracleRouter,
    )
}
"""Every router by CLI name."""


def make_router(name: str, **options: Any) -> Router:
    """Build the router called ``name``.

    Raises:
        ValueError: Unknown name (the message lists the known ones).
    """
    if name not in ROUTERS:
        raise ValueError(f"unknown router {name!r}; known routers: {', '.join(ROUTERS)}")
    return ROUTERS[name](**options)


__all__ = [
    "ROUTERS",
    "LeastLoadedRouter",
    "OracleRouter",
    "PowerOfTwoRouter",
    "PredictedMeanRouter",
    "RandomRouter",
    "RoundRobinRouter",
    "Router",
    "RoutingContext",
    "TailAwareRouter",
    "Truth",
    "argmin_first",
    "forecast_completion",
    "make_router",
    "slot_completion",
]
