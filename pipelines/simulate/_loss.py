"""The simulation job's capacity-loss and drift-retraining branch.

A run goes through :func:`pipelines.capacity.run_capacity` (a drift monitor on the
completions and, with ``retrain``, forecasts recalibrated on an alarm) when the
request has a loss time or asks for drift retraining; otherwise the plain replay
runs. Errors name the CLI option of the field at fault.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from core import InputError

if TYPE_CHECKING:
    from pipelines.simulate._scenario import Scenario
    from scheduler_hooks.sim import CapacityEvent, SimResult

LOSS_KINDS = ("degrade", "slow", "remove")
WARMUP_S = 1800.0
"""Start of the pre-loss P90 window, s (capped at half the loss time for short replays)."""


class LossSpec(BaseModel):
    """A capacity loss and drift retraining (frozen).

    Attributes:
        at_s: When capacity is lost, simulated seconds (``None``: no loss).
        fraction: Share of capacity lost, in (0, 1).
        kind: ``degrade``, ``slow`` or ``remove`` (see :class:`scheduler_hooks.sim.CapacityEvent`).
        devices: Comma-separated device types a degrade hits (``None``: every type).
        retrain: Recalibrate forecasts on a drift alarm.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    at_s: float | None = None
    fraction: float = 0.71
    kind: str = "degrade"
    devices: str | None = None
    retrain: bool = False

    @property
    def active(self) -> bool:
        """The run goes through :func:`pipelines.capacity.run_capacity`."""
        return self.at_s is not None or self.retrain


def _hit_devices(spec: LossSpec, cluster_devices: tuple[str, ...]) -> tuple[str, ...]:
    if spec.devices is None:
        return ()
    if spec.at_s is None or spec.kind != "degrade":
        raise InputError(
            "--loss-devices applies to a degrade loss only (--loss-at, --loss-kind degrade)"
        )
    names = (d.strip().lower() for d in spec.devices.split(","))
    hit = tuple(dict.fromkeys(d for d in names if d))
    unknown = [d for d in hit if d not in cluster_devices]
    if not hit or unknown:
        raise InputError(
            f"--loss-devices {spec.devices!r}: {', '.join(unknown) or 'empty'} not in "
            f"the cluster ({', '.join(cluster_devices)})"
        )
    return hit


def loss_event(
    spec: LossSpec, cluster_devices: tuple[str, ...], forecasts: bool, router: str, scaler: str
) -> CapacityEvent | None:
    """Check ``spec`` and build the capacity event (``None`` without a loss time).

    Args:
        spec: The loss.
        cluster_devices: Device types of the cluster.
        forecasts: The router or the scaler reads forecasts.
        router: The router's name, for the message.
        scaler: The scaler's name, for the message.

    Raises:
        core.InputError: Retraining without forecasts; an unknown kind; a fraction
            outside (0, 1); devices outside the cluster; a negative loss time.
    """
    from pipelines.capacity import degrade_event
    from scheduler_hooks.sim import CapacityEvent

    if spec.retrain and not forecasts:
        raise InputError(
            f"--drift-retrain recalibrates forecasts, but neither router {router!r} nor "
            f"scaler {scaler!r} reads them; use router predicted_mean or tail_aware, "
            "or scaler forecast"
        )
    if spec.kind not in LOSS_KINDS:
        known = ", ".join(LOSS_KINDS)
        raise InputError(f"--loss-kind {spec.kind!r} is not known; choose one of: {known}")
    if not 0.0 < spec.fraction < 1.0:
        raise InputError(f"--loss-fraction must lie in (0, 1), got {spec.fraction:g}")
    hit = _hit_devices(spec, cluster_devices)
    if spec.at_s is None:
        return None
    if not spec.at_s >= 0.0:
        raise InputError(f"--loss-at must be >= 0 s, got {spec.at_s:g}")
    if spec.kind == "degrade":
        return degrade_event(spec.at_s, spec.fraction, hit)
    kind: Literal["slow", "remove"] = "slow" if spec.kind == "slow" else "remove"
    return CapacityEvent(spec.at_s, spec.fraction, kind)


def run_with_loss(
    scenario: Scenario,
    event: CapacityEvent | None,
    retrain: bool,
    *,
    policy: dict[str, Any],
    progress: Callable[[int], None] | None = None,
) -> tuple[SimResult, dict[str, Any]]:
    """Replay with the loss and the drift monitor: ``(result, extra JSON keys)``.

    Args:
        scenario: The window to replay.
        event: The capacity loss (``None``: drift retraining only).
        retrain: Recalibrate forecasts on an alarm.
        policy: :func:`pipelines.capacity.run_capacity`'s policy keywords (router,
            scaler, scaler_options, seed, samples, quantile, percentiles).
        progress: Called with the number of completed requests now and then.

    Returns:
        The result and the extra keys: ``drift_retrain``, ``alarms`` (``ood`` events of
        the monitor), ``retrains`` (jobs whose forecasts took over) and, with a loss,
        ``loss_at_s``, ``loss_kind``, ``loss_fraction``, ``pre_loss_p90``, ``late_p90``
        (seconds) and ``late_over_pre`` (:func:`pipelines.capacity.recovery`; ``None``
        for an empty window).

    Raises:
        core.InputError: The loss time is not before the last arrival.
    """
    from pipelines.capacity import recovery, run_capacity

    if event is not None:
        last = float(scenario.workload.arrival.max())
        if event.at_s >= last:
            raise InputError(
                f"--loss-at {event.at_s:g} s is not before the last arrival ({last:.0f} s)"
            )
    out = run_capacity(scenario, event, retrain=retrain, progress=progress, **policy)
    extra: dict[str, Any] = {
        "drift_retrain": retrain,
        "alarms": sum(1 for e in out.events if e["kind"] == "ood"),
        "retrains": len(out.jobs),
    }
    if event is not None:
        rec = recovery(out.result, event.at_s, warmup_s=min(WARMUP_S, event.at_s / 2))
        extra |= {
            "loss_at_s": event.at_s,
            "loss_kind": event.kind,
            "loss_fraction": event.fraction,
            "pre_loss_p90": _finite(rec.pre_p90),
            "late_p90": _finite(rec.late_p90),
            "late_over_pre": _finite(rec.ratio),
        }
        if event.kind == "degrade":
            extra["loss_devices"] = list(event.devices) or "all"
    return out.result, extra


def _finite(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None
