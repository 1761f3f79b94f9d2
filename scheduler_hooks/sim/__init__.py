"""A trace-driven discrete-event simulator of a heterogeneous serving cluster.

:class:`Workload` holds arrivals (independent requests, or agentic session calls
that wait for the previous call plus its tool time) and each request's true service
time per device type; :class:`Simulator` replays it through a router and a scaler
with cold starts and capacity events; :class:`SimResult` summarises latency, SLO
attainment and replica-seconds. See ``docs/scheduling.md`` for the model.
"""

from scheduler_hooks.sim._config import CapacityEvent, Completion, SimConfig
from scheduler_hooks.sim._engine import Simulator, simulate
from scheduler_hooks.sim._result import SimResult
from scheduler_hooks.sim._workload import Workload, parse_cluster

__all__ = [
    "CapacityEvent",
    "Completion",
    "SimConfig",
    "SimResult",
    "Simulator",
    "Workload",
    "parse_cluster",
    "simulate",
]
