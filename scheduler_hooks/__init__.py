"""Scheduler hooks: routing and scaling policies that act on tailcast forecasts, and a simulator.

* :mod:`scheduler_hooks.routing`: routers (``random``, ``round_robin``, ``po2``,
  ``least_loaded``, ``predicted_mean``, ``tail_aware``, ``oracle``), one per module.
* :mod:`scheduler_hooks.scaling`: scalers (``none``, ``utilization``, ``forecast``).
* :mod:`scheduler_hooks.sim`: a trace-driven discrete-event cluster simulator.

Policies are pure: they read a :class:`ReplicaState` list and a :class:`ForecastBook`
(quantile forecasts as arrays, see :mod:`core.quantiles`) and never import the
training stack, the feature store or the registry.
"""

from scheduler_hooks._book import ForecastBook, ForecastFn
from scheduler_hooks._plan import ScalingPlan, plan
from scheduler_hooks._select import tail_aware_choice
from scheduler_hooks._state import ReplicaState

__all__ = [
    "ForecastBook",
    "ForecastFn",
    "ReplicaState",
    "ScalingPlan",
    "plan",
    "tail_aware_choice",
]
