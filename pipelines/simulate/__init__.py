"""The simulation job: real trace + device measurements + a trained predictor -> simulator.

:func:`run` takes a :class:`SimulationRequest` (the ``tailcast simulate`` options) and
returns a :class:`SimulationResult`; the CLI only parses options into the request and
renders the result. The steps, each its own module and usable alone (the routing and
scaling benchmarks compose them):

1. :func:`load_trace` (``_trace``) reads ``azure``, ``mooncake`` or ``minisweagent``
   and marks the rows that train the predictor;
2. :func:`service_times` (``_service``) composes each request's true service time on
   each device type from the splitwise device measurements (``device_data``; see
   :func:`device_data_path`);
3. :func:`train_forecaster` / :func:`crossfit_forecasts` / :func:`forecast_table`
   (``_forecast``) train the service-time predictor and give the simulator its
   forecasts;
4. :func:`build_scenario` and :func:`run_policy` (``_scenario``) replay the simulated
   part at ``load`` x the cluster's capacity under one router and scaler, with a
   capacity loss and drift retraining from ``_loss`` when asked;
5. :func:`latency_plot` (``_plot``) draws rolling P95 latency over time.
"""

from pipelines.simulate._forecast import (
    cache_dir,
    crossfit_forecasts,
    forecast_table,
    placeholder_forecasts,
    task_folds,
    train_forecaster,
)
from pipelines.simulate._job import (
    FORECAST_POLICIES,
    SimulationRequest,
    SimulationResult,
    run,
)
from pipelines.simulate._loss import LOSS_KINDS, LossSpec
from pipelines.simulate._plot import latency_plot
from pipelines.simulate._scenario import Scenario, build_scenario, router_options, run_policy
from pipelines.simulate._service import HARDWARE, device_data_path, service_times
from pipelines.simulate._trace import FORMATS, SESSION_SALT, TraceData, load_trace
from scheduler_hooks.sim import CapacityEvent

__all__ = [
    "FORECAST_POLICIES",
    "FORMATS",
    "HARDWARE",
    "LOSS_KINDS",
    "SESSION_SALT",
    "CapacityEvent",
    "LossSpec",
    "Scenario",
    "SimulationRequest",
    "SimulationResult",
    "TraceData",
    "build_scenario",
    "cache_dir",
    "crossfit_forecasts",
    "device_data_path",
    "forecast_table",
    "latency_plot",
    "load_trace",
    "placeholder_forecasts",
    "router_options",
    "run",
    "run_policy",
    "service_times",
    "task_folds",
    "train_forecaster",
]
