"""Capacity loss with and without drift-triggered retraining (the issue-7 scenario).

A pool of the cluster's devices degrades: every replica of the ``degraded`` device
types, those serving and any added later, serves at ``1 - fraction`` of its nominal
speed (a throttled provider or GPU pool), so the cluster loses ``fraction`` of its
capacity while its replica count stays the same. The forecast-driven scaler adds
replicas of another device type and the tail-aware router steers work by forecasts.

* **Without retraining** the forecasts keep describing nominal speed: the router keeps
  sending the degraded pool its share of requests, each taking ``1 / (1 - fraction)``
  times longer than forecast, and the scaler sees a backlog that much smaller than it
  is, so it adds too few replicas: the tail stays high.
* **With drift-triggered retraining** (:class:`DriftRetrainer`, the simulator's
  ``on_complete`` hook) every completion is fed, in simulated time order, to a
  :class:`drift.DriftMonitor` as ``u = F(observed service time)`` under the forecast
  of the model in charge, grouped by (served model, ``default``, device). On an ``ood``
  alarm a job waits for ``calibration_rows`` completions of the alarmed device (its
  data), then refits (:func:`recalibrate`) and, ``retrain_s`` simulated seconds later
  (the job's duration), hands the simulator a new :class:`scheduler_hooks.ForecastBook`
  built from the refitted forecasts; the monitor forgets the served model's groups and
  judges only requests that arrived after the swap.

The refit is the retraining job's default warm start (``pipelines.retrain``,
``warm_start="recalibrate"``): the predictor's network is kept and its conformal
offsets are recomputed on the recent window, per device type, in the log space the
predictor is trained in (:func:`training._calibrate.conformal_offsets`, the same
estimator as :func:`training._calibrate.calibrate`). A device type with fewer than
``min_group`` recent completions keeps its forecasts. A uniform slow-down multiplies
service times, i.e. shifts log service times, which this refit captures exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from core.drift import DriftGroup, DriftObservation, pit_and_pinball
from drift import DriftMonitor, MonitorConfig
from pipelines.simulate import Scenario, router_options
from scheduler_hooks import ForecastBook
from scheduler_hooks.routing import make_router
from scheduler_hooks.scaling import make_scaler
from scheduler_hooks.sim import CapacityEvent, Completion, SimResult, Simulator

F64 = npt.NDArray[np.float64]
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""Wall-clock origin of simulated time (the monitor wants aware timestamps)."""


@dataclass(frozen=True)
class RetrainPolicy:
    """How alarms turn into refits.

    Attributes:
        monitor: :class:`drift.MonitorConfig` of the monitor (default: its defaults).
        calibration_rows: Completions of the alarmed device, observed after the
            alarm, that a job waits for (its recent window).
        min_group: Recent completions a device type needs to be refitted.
        retrain_s: Simulated seconds from the job's start to the new forecasts.
        max_retrains: Jobs at most (later alarms are only recorded).
    """

    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    calibration_rows: int = 200
    min_group: int = 50
    retrain_s: float = 120.0
    max_retrains: int = 3


def recalibrate(
    table: F64,
    levels: tuple[float, ...],
    requests: npt.NDArray[np.int64],
    devices: npt.NDArray[np.int64],
    observed: F64,
    min_group: int,
) -> tuple[F64, dict[int, float]]:
    """Conformal offsets per device type on recent completions, applied to every request.

    Args:
        table: Forecast quantiles of every request on every device ``(n, D, K)``, seconds.
        levels: Their levels ``(K,)``.
        requests: Recent completions' request ids ``(m,)``.
        devices: The device type index each ran on ``(m,)``.
        observed: Their observed service times ``(m,)``, seconds.
        min_group: Completions a device type needs; others keep their forecasts.

    Returns:
        ``(new table, {device: median multiplier})`` (the multiplier of the 0.5-ish level,
        ``exp(offset)``, for the report).

    >>> t = np.tile(np.array([1.0, 2.0, 4.0]), (4, 1, 1))  # 4 requests, 1 device, K = 3
    >>> observed = np.full(4, 8.0)  # every request took 8 s: 4 x the forecast median
    >>> new, scale = recalibrate(t, (0.1, 0.5, 0.9), np.arange(4), np.zeros(4, np.int64),
    ...                          observed, min_group=4)
    >>> round(scale[0], 2), new[0, 0].round(6).tolist()
    (4.0, [8.0, 8.0, 8.0])
    """
    from training import conformal_offsets

    out = table.copy()
    scales: dict[int, float] = {}
    mid = int(np.argmin(np.abs(np.asarray(levels) - 0.5)))
    for d in np.unique(devices).tolist():
        mask = devices == d
        if mask.sum() < min_group:
            continue
        q = np.maximum(table[requests[mask], d, :], 1e-9)
        scores = np.log(np.maximum(observed[mask], 1e-9))[:, None] - np.log(q)
        offsets = conformal_offsets(scores, levels)
        shifted = np.log(np.maximum(table[:, d, :], 1e-9)) + offsets
        out[:, d, :] = np.exp(np.maximum.accumulate(shifted, axis=1))
        scales[int(d)] = float(np.exp(offsets[mid]))
    return out, scales


class DriftRetrainer:
    """The simulator's ``on_complete`` hook: drift monitor, refits, forecast book swaps.

    Args:
        table: Forecast quantiles ``(n, D, K)`` of the model in charge at the start.
        levels: Their levels.
        device_names: Device type names (the workload's).
        served_model: Served model name of the monitor's groups.
        policy: Monitor and job settings.
        retrain: Act on alarms (``False``: only monitor and record them).
        book: Makes a forecast book from a quantile table (same seed as the run).
    """

    def __init__(
        self,
        table: F64,
        levels: tuple[float, ...],
        device_names: tuple[str, ...],
        served_model: str,
        policy: RetrainPolicy,
        retrain: bool,
        book: Callable[[F64], ForecastBook],
    ) -> None:
        self.table, self.levels, self.names = table, levels, device_names
        self.served_model, self.policy, self.retrain = served_model, policy, retrain
        self.make_book = book
        self.monitor = DriftMonitor(policy.monitor)
        self.events: list[dict[str, Any]] = []
        self.jobs: list[dict[str, Any]] = []
        self.sim: Simulator | None = None
        self._in_charge_since = -np.inf
        self._pending: tuple[float, F64, dict[str, Any]] | None = None
        self._alarm: tuple[float, int] | None = None
        self._recent: list[tuple[int, int, float]] = []
        self._groups = {
            d: DriftGroup(served_model=served_model, prompt_class="default", device=n)
            for d, n in enumerate(device_names)
        }

    def __call__(self, done: Completion) -> None:
        """Observe one completion (simulated-time order)."""
        if self._pending is not None and done.end_s >= self._pending[0]:
            at, self.table, job = self._pending
            self._pending, self._alarm, self._recent = None, None, []
            self._in_charge_since = at
            self.monitor.reset(self.served_model)
            self.jobs.append(job)
        if done.arrival_s < self._in_charge_since:
            return  # forecast issued by a model no longer in charge
        y = done.service_s
        u, loss = pit_and_pinball(self.levels, self.table[done.request, done.device][None], [y])
        obs = DriftObservation(
            group=self._groups[done.device],
            u=float(np.clip(u[0], 0.0, 1.0)),
            pinball=float(loss[0]),
            model_version=str(len(self.jobs)),
            observed_at=EPOCH + timedelta(seconds=done.end_s),
        )
        for event in self.monitor.observe(obs):
            self.events.append(
                {
                    "kind": event.kind,
                    "at_s": done.end_s,
                    "device": self.names[done.device],
                    "n": event.n_samples,
                    "model_version": event.model_version,
                }
            )
            if event.kind == "ood" and self._ready_for_job():
                self._alarm = (done.end_s, done.device)
        if self._alarm is not None:
            self._recent.append((done.request, done.device, y))
            self._maybe_start(done.end_s)

    def _ready_for_job(self) -> bool:
        started = len(self.jobs) + (self._pending is not None)
        return (
            self.retrain
            and self._alarm is None
            and self._pending is None
            and (started < self.policy.max_retrains)
        )

    def _maybe_start(self, now: float) -> None:
        assert self._alarm is not None
        alarm_at, device = self._alarm
        if sum(1 for _, d, _ in self._recent if d == device) < self.policy.calibration_rows:
            return
        req, dev, obs = (np.asarray(c) for c in zip(*self._recent, strict=True))
        table, scales = recalibrate(
            self.table,
            self.levels,
            req.astype(np.int64),
            dev.astype(np.int64),
            obs.astype(np.float64),
            self.policy.min_group,
        )
        swap_at = now + self.policy.retrain_s
        job = {
            "alarm_s": alarm_at,
            "start_s": now,
            "swap_s": swap_at,
            "rows": len(req),
            "scale": {self.names[d]: round(s, 3) for d, s in scales.items()},
        }
        assert self.sim is not None, "bind the simulator first"
        self.sim.swap_book(swap_at, self.make_book(table))
        self._pending = (swap_at, table, job)
        self._alarm = None


@dataclass(frozen=True)
class CapacityRun:
    """One run of the scenario.

    Attributes:
        result: Per-request outcomes.
        events: Monitor state changes (``kind``, ``at_s``, ``device``, ``n``).
        jobs: Retraining jobs (``alarm_s``, ``start_s``, ``swap_s``, ``rows``, ``scale``).
    """

    result: SimResult
    events: list[dict[str, Any]]
    jobs: list[dict[str, Any]]


def run_capacity(
    scenario: Scenario,
    event: CapacityEvent | None,
    *,
    retrain: bool,
    router: str = "tail_aware",
    scaler: str = "forecast",
    scaler_options: dict[str, Any] | None = None,
    policy: RetrainPolicy | None = None,
    served_model: str = "simulate",
    seed: int = 0,
    samples: int = 256,
    quantile: float = 0.95,
    progress: Callable[[int], None] | None = None,
    percentiles: str = "shared",
) -> CapacityRun:
    """Replay ``scenario`` with ``event`` (``None``: no loss), retraining on drift or not.

    The monitor runs in every case (without ``retrain`` its alarms are only recorded).
    ``quantile`` and ``percentiles`` configure ``tail_aware`` (ignored by other routers).
    ``progress`` is called with the number of completed requests now and then.
    """
    policy = policy or RetrainPolicy()
    levels = scenario.levels

    def book(table: F64) -> ForecastBook:
        return ForecastBook(levels, lambda ids: table[ids], samples=samples, seed=seed)

    table = np.asarray(scenario.quantiles, dtype=np.float64)
    hook = DriftRetrainer(
        table, levels, scenario.workload.devices, served_model, policy, retrain, book
    )
    sim = Simulator(
        scenario.workload,
        replace(scenario.config, seed=seed, capacity_event=event),
        make_router(router, **router_options(router, quantile, percentiles)),
        make_scaler(scaler, **{"slo_s": scenario.slo_s, **(scaler_options or {})}),
        book(table),
        progress=progress,
        on_complete=hook,
    )
    hook.sim = sim
    result = sim.run()
    return CapacityRun(result, hook.events, hook.jobs)


def degrade_event(at_s: float, fraction: float, devices: tuple[str, ...]) -> CapacityEvent:
    """The pool of ``devices`` loses ``fraction`` of its speed at ``at_s`` (later replicas too)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    return CapacityEvent(at_s, fraction, "degrade", speed=1.0 - fraction, devices=devices)


@dataclass(frozen=True)
class Recovery:
    """P90 before the loss and at the end of the run.

    Attributes:
        pre_p90: P90 latency of the arrivals in ``[warmup_s, loss)``, seconds.
        late_p90: P90 latency of the arrivals in the second half of the time after the
            loss (``[loss + (end - loss) / 2, end]``), seconds.
        ratio: ``late_p90 / pre_p90``.
        recovered: ``ratio <= 1 + tolerance`` (the bar: within 20%).
    """

    pre_p90: float
    late_p90: float
    ratio: float
    recovered: bool


def recovery(
    result: SimResult, loss_s: float, warmup_s: float = 1800.0, tolerance: float = 0.2
) -> Recovery:
    """The run's late P90 against its pre-loss P90 (see :class:`Recovery`)."""
    end = float(np.nanmax(result.arrival))
    pre = p90_between(result, warmup_s, loss_s)
    late = p90_between(result, loss_s + (end - loss_s) / 2, end + 1.0)
    ratio = late / pre
    return Recovery(pre, late, ratio, bool(ratio <= 1.0 + tolerance))


def windowed_p90(result: SimResult, window_s: float, t0: float = 0.0) -> tuple[F64, F64]:
    """P90 latency over consecutive arrival-time windows from ``t0``: (mid-points, values)."""
    edges = np.arange(t0, float(np.nanmax(result.arrival)) + window_s, window_s)
    which = np.searchsorted(edges, result.arrival, side="right") - 1
    lat = result.latency
    mids, vals = [], []
    for k in range(len(edges) - 1):
        these = lat[which == k]
        if len(these):
            mids.append((edges[k] + edges[k + 1]) / 2)
            vals.append(float(np.quantile(these, 0.9)))
    return np.asarray(mids), np.asarray(vals)


def p90_between(result: SimResult, start_s: float, end_s: float) -> float:
    """P90 latency of the requests that arrived in ``[start_s, end_s)``, seconds."""
    mask = (result.arrival >= start_s) & (result.arrival < end_s)
    return float(np.quantile(result.latency[mask], 0.9)) if mask.any() else float("nan")


__all__ = [
    "CapacityRun",
    "DriftRetrainer",
    "Recovery",
    "RetrainPolicy",
    "degrade_event",
    "p90_between",
    "recalibrate",
    "recovery",
    "run_capacity",
    "windowed_p90",
]
