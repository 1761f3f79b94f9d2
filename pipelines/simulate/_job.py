"""The simulation job: :func:`run` turns a :class:`SimulationRequest` into a result.

Steps: read the trace (:func:`pipelines.simulate.load_trace`), compose true service
times from the device measurements (:func:`pipelines.simulate.service_times`), train
or load the service-time predictor when a policy reads forecasts
(:func:`pipelines.simulate.train_forecaster`), scale arrivals to the offered load
(:func:`pipelines.simulate.build_scenario`), replay under the router and scaler (with
a capacity loss and drift retraining when asked), and draw the latency plot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from core import InputError, TailcastError
from pipelines.simulate._loss import LossSpec, loss_event, run_with_loss
from pipelines.simulate._service import HARDWARE

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pipelines.simulate._scenario import Scenario
    from pipelines.simulate._trace import TraceData
    from scheduler_hooks.sim import CapacityEvent, SimResult

Progress = Callable[[str, int, int], None]
"""Called with ``(phase, done, total)``: phases ``train predictor`` and ``simulate``."""
FORECAST_POLICIES = frozenset({"predicted_mean", "tail_aware", "forecast"})
"""Routers and scalers that read forecasts (the others run without a predictor)."""


class SimulationRequest(BaseModel):
    """What to simulate (frozen configuration; the CLI's options, one field each).

    Attributes:
        trace: Trace file to replay.
        cluster: Replicas per device type, e.g. ``a100:4,h100:2``.
        fmt: ``azure``, ``mooncake``, ``minisweagent`` or ``auto`` (detect).
        router: Routing policy name (:data:`scheduler_hooks.routing.ROUTERS`).
        scaler: Scaling policy name (:data:`scheduler_hooks.scaling.SCALERS`).
        load: Offered load as a fraction of the cluster's capacity.
        seed: Seed of every random choice.
        slots: Requests a replica serves at once (a measured batch size, 1 to 64).
        slo_s: Latency SLO, seconds (default: 5 x the median fastest service time).
        quantile: Level ``tail_aware`` minimises.
        percentiles: ``tail_aware``'s draws: ``shared`` or ``independent``.
        arrivals: The forecast scaler's arrival model (``auto``, ``poisson``, ``renewal``).
        samples: Monte Carlo draws of the forecast book.
        limit: Simulate at most this many requests (whole sessions).
        train_fraction: Leading share of an arrival trace that trains the predictor.
        trials: Optuna trials of the predictor search.
        cold_start_s: Scale-up delay, seconds (also the forecast scaler's horizon).
        max_replicas: Replica budget of scalers (default: 4 x the cluster).
        scale_device: Device type scale-ups add (default: the cluster's first).
        loss: Capacity loss and drift retraining.
        device_data: The splitwise device measurements (default: a source checkout's
            shared data; see :func:`pipelines.simulate.device_data_path`).
        home: Where the predictor is cached and the default plot is written.
        plot: Latency-over-time PNG (default under ``home``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    trace: Path
    cluster: str
    fmt: str = "auto"
    router: str = "tail_aware"
    scaler: str = "none"
    load: float = Field(default=0.8, ge=0.01)
    seed: int = 0
    slots: int = 1
    slo_s: float | None = None
    quantile: float = 0.95
    percentiles: str = "shared"
    arrivals: str = "auto"
    samples: int = Field(default=256, ge=16)
    limit: int | None = Field(default=None, ge=1)
    train_fraction: float = 0.4
    trials: int = Field(default=2, ge=1)
    cold_start_s: float = 60.0
    max_replicas: int | None = None
    scale_device: str | None = None
    loss: LossSpec = LossSpec()
    device_data: Path | None = None
    home: Path = Path(".tailcast")
    plot: Path | None = None

    @property
    def forecasts(self) -> bool:
        """The router or the scaler reads forecasts."""
        return bool({self.router, self.scaler} & FORECAST_POLICIES)


@dataclass(frozen=True)
class SimulationResult:
    """What a simulation produced.

    Attributes:
        request: The request.
        fmt: The trace format read.
        result: Per-request outcomes.
        summary: :meth:`scheduler_hooks.sim.SimResult.summary` at the SLO (seconds,
            fractions, replica-seconds, request count).
        capacity_rps: Requests per second the cluster serves at full utilisation.
        plot: The latency-over-time PNG written.
        extra: Capacity-loss and drift figures (empty without a loss or retraining).
        seconds: Wall time of the job, seconds.
    """

    request: SimulationRequest
    fmt: str
    result: SimResult
    summary: dict[str, float]
    capacity_rps: float
    plot: Path
    extra: dict[str, Any]
    seconds: float

    def as_json(self) -> dict[str, Any]:
        """JSON-ready result (what ``tailcast simulate --json`` prints)."""
        req = self.request
        return {
            **{k: round(v, 4) for k, v in self.summary.items()},
            "router": req.router,
            "scaler": req.scaler,
            "load": req.load,
            "capacity_rps": round(self.capacity_rps, 4),
            "cluster": req.cluster,
            "format": self.fmt,
            "plot": str(self.plot),
            **self.extra,
            "seconds": round(self.seconds, 1),
        }


@dataclass(frozen=True)
class _Prepared:
    """The checked request: the trace read and its service times composed."""

    fmt: str
    cluster: tuple[tuple[str, int], ...]
    devices: tuple[str, ...]
    scale_device: str | None
    event: CapacityEvent | None
    trace: TraceData
    work: npt.NDArray[np.float64]


def _scale_device(name: str | None) -> str | None:
    if name is None:
        return None
    device = name.strip().lower()
    if device not in HARDWARE:
        known = ", ".join(HARDWARE)
        raise InputError(f"--scale-device {name!r} has no measurements; known: {known}")
    return device


def _prepare(request: SimulationRequest) -> _Prepared:
    """Check the request, read the trace and compose the service times."""
    from feature_store.importers import detect_format
    from pipelines.simulate._service import service_times
    from pipelines.simulate._trace import load_trace
    from scheduler_hooks.sim import parse_cluster

    fmt = detect_format(request.trace) if request.fmt == "auto" else request.fmt
    cluster = parse_cluster(request.cluster)
    devices = tuple(dict.fromkeys(name for name, _ in cluster))
    scale_to = _scale_device(request.scale_device)
    event = loss_event(request.loss, devices, request.forecasts, request.router, request.scaler)
    devices = tuple(dict.fromkeys((*devices, scale_to or devices[0])))
    trace = load_trace(request.trace, fmt, request.train_fraction)
    work = service_times(
        trace, devices, slots=request.slots, device_data=request.device_data, seed=request.seed
    )
    return _Prepared(fmt, cluster, devices, scale_to, event, trace, work)


def _forecasts(
    request: SimulationRequest, prep: _Prepared, progress: Progress
) -> tuple[npt.NDArray[np.float64], tuple[float, ...]]:
    """Forecast quantiles ``(n, D, K)`` and levels (a placeholder when no policy reads them).

    Raises:
        RuntimeError: Training the predictor failed.
    """
    from pipelines.simulate._forecast import (
        cache_dir,
        forecast_table,
        placeholder_forecasts,
        train_forecaster,
    )

    if not request.forecasts:
        return placeholder_forecasts(prep.work)
    out = cache_dir(
        request.home, request.trace, prep.fmt, prep.devices, request.slots, request.seed
    )
    done = [0]

    def on_trial(_: Any) -> None:
        done[0] += 1
        progress("train predictor", done[0], request.trials)

    progress("train predictor", 0, request.trials)
    try:
        predictor = train_forecaster(
            prep.trace,
            prep.work,
            prep.devices,
            out,
            seed=request.seed,
            trials=request.trials,
            on_trial=on_trial,
        )
    except (TailcastError, ValueError, RuntimeError) as exc:
        raise RuntimeError(f"training the predictor failed: {exc}") from exc
    progress("train predictor", request.trials, request.trials)
    table = forecast_table(predictor, prep.trace, prep.devices)
    return table, tuple(predictor.spec.levels)


def _scenario(request: SimulationRequest, prep: _Prepared, progress: Progress) -> Scenario:
    from pipelines.simulate._scenario import build_scenario
    from scheduler_hooks.sim import SimConfig

    quantiles, levels = _forecasts(request, prep, progress)
    config = SimConfig(
        cluster=prep.cluster,
        slots=request.slots,
        cold_start_s=request.cold_start_s,
        seed=request.seed,
        scale_device=prep.scale_device,
    )
    return build_scenario(
        prep.trace,
        prep.work,
        quantiles,
        levels,
        config,
        prep.devices,
        request.load,
        request.slo_s,
        request.limit,
    )


def _policy(request: SimulationRequest, prep: _Prepared) -> dict[str, Any]:
    """Keywords of :func:`pipelines.simulate.run_policy` (and of the capacity run)."""
    budget = request.max_replicas or 4 * sum(c for _, c in prep.cluster)
    return {
        "router": request.router,
        "scaler": request.scaler,
        "seed": request.seed,
        "quantile": request.quantile,
        "percentiles": request.percentiles,
        "samples": request.samples,
        "scaler_options": {
            "min_replicas": 1,
            "max_replicas": budget,
            "horizon_s": request.cold_start_s,  # the forecast scaler looks over the cold start
            "arrival_model": request.arrivals,
        },
    }


def run(request: SimulationRequest, *, progress: Progress | None = None) -> SimulationResult:
    """Run one simulation (see the module doc) and write its latency plot.

    Args:
        request: What to simulate.
        progress: Called with ``(phase, done, total)`` as the job advances.

    Raises:
        core.InputError: Bad input (cluster, device, format, loss options, missing
            device measurements); the message names the CLI option.
        ValueError: A trace or policy the job cannot use (unknown format or policy).
        OSError: The trace cannot be read.
        RuntimeError: Training the predictor failed.
    """
    from pipelines.simulate._plot import latency_plot
    from pipelines.simulate._scenario import run_policy

    say: Progress = progress or (lambda *_: None)
    started = time.perf_counter()
    prep = _prepare(request)
    scenario = _scenario(request, prep, say)
    phase, total = f"simulate {request.router}", scenario.workload.n
    say(phase, 0, total)
    policy = _policy(request, prep)
    extra: dict[str, Any] = {}
    if request.loss.active:
        result, extra = run_with_loss(
            scenario,
            prep.event,
            request.loss.retrain,
            policy=policy,
            progress=lambda done: say(phase, done, total),
        )
    else:
        result = run_policy(scenario, progress=lambda done: say(phase, done, total), **policy)
    say(phase, total, total)
    name = f"{request.trace.stem}-{request.router}-{request.scaler}.png"
    png = request.plot or request.home / "simulate" / name
    latency_plot({f"{request.router}/{request.scaler}": result}, png)
    return SimulationResult(
        request=request,
        fmt=prep.fmt,
        result=result,
        summary=result.summary(scenario.slo_s),
        capacity_rps=scenario.capacity_rps,
        plot=png,
        extra=extra,
        seconds=time.perf_counter() - started,
    )
