"""``tailcast simulate``'s capacity-loss and drift-retraining branch.

A run goes through :func:`pipelines.capacity.run_capacity` (a drift monitor on the
completions and, with ``--drift-retrain``, forecasts recalibrated on an alarm) when
``--loss-at`` or ``--drift-retrain`` is given; otherwise the plain replay runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.table import Table

from pipelines.cli._common import console, fail

if TYPE_CHECKING:
    from pipelines.simulate import Scenario
    from scheduler_hooks.sim import CapacityEvent, SimResult

LOSS_KINDS = ("degrade", "slow", "remove")
WARMUP_S = 1800.0
"""Start of the pre-loss P90 window, s (capped at half the loss time for short replays)."""


@dataclass(frozen=True)
class LossOptions:
    """The capacity-loss options as given on the command line.

    Attributes:
        at_s: ``--loss-at``: when capacity is lost, simulated seconds (``None``: no loss).
        fraction: ``--loss-fraction``: share of capacity lost, in (0, 1).
        kind: ``--loss-kind``: ``degrade``, ``slow`` or ``remove``.
        devices: ``--loss-devices``: comma-separated device types a degrade hits
            (``None``: every device type).
        retrain: ``--drift-retrain``: recalibrate forecasts on a drift alarm.
    """

    at_s: float | None
    fraction: float
    kind: str
    devices: str | None
    retrain: bool

    @property
    def active(self) -> bool:
        """The run goes through :func:`pipelines.capacity.run_capacity`."""
        return self.at_s is not None or self.retrain


def scale_device(name: str | None, known: tuple[str, ...]) -> str | None:
    """``--scale-device`` normalised and checked against the measured device types."""
    if name is None:
        return None
    device = name.strip().lower()
    if device not in known:
        fail(f"--scale-device {name!r} has no measurements; known: {', '.join(known)}")
    return device


def loss_event(
    options: LossOptions,
    cluster_devices: tuple[str, ...],
    forecasts: bool,
    router: str,
    scaler: str,
) -> CapacityEvent | None:
    """Check the options (errors name the option) and build the capacity event.

    Args:
        options: The options.
        cluster_devices: Device types of ``--cluster``.
        forecasts: The router or the scaler reads forecasts.
        router: ``--router``, for the message.
        scaler: ``--scaler``, for the message.

    Returns:
        The event, ``None`` without ``--loss-at``.
    """
    from pipelines.capacity import degrade_event
    from scheduler_hooks.sim import CapacityEvent

    if options.retrain and not forecasts:
        fail(
            f"--drift-retrain recalibrates forecasts, but neither router {router!r} nor "
            f"scaler {scaler!r} reads them; use router predicted_mean or tail_aware, "
            "or scaler forecast"
        )
    if options.kind not in LOSS_KINDS:
        fail(f"--loss-kind {options.kind!r} is not known; choose one of: {', '.join(LOSS_KINDS)}")
    if not 0.0 < options.fraction < 1.0:
        fail(f"--loss-fraction must lie in (0, 1), got {options.fraction:g}")
    hit: tuple[str, ...] = ()
    if options.devices is not None:
        if options.at_s is None or options.kind != "degrade":
            fail("--loss-devices applies to a degrade loss only (--loss-at, --loss-kind degrade)")
        names = (d.strip().lower() for d in options.devices.split(","))
        hit = tuple(dict.fromkeys(d for d in names if d))
        unknown = [d for d in hit if d not in cluster_devices]
        if not hit or unknown:
            fail(
                f"--loss-devices {options.devices!r}: {', '.join(unknown) or 'empty'} not in "
                f"the cluster ({', '.join(cluster_devices)})"
            )
    if options.at_s is None:
        return None
    if not options.at_s >= 0.0:
        fail(f"--loss-at must be >= 0 s, got {options.at_s:g}")
    if options.kind == "degrade":
        return degrade_event(options.at_s, options.fraction, hit)
    return CapacityEvent(
        options.at_s, options.fraction, "slow" if options.kind == "slow" else "remove"
    )


def run(
    scenario: Scenario,
    event: CapacityEvent | None,
    retrain: bool,
    *,
    router: str,
    scaler: str,
    scaler_options: dict[str, Any],
    seed: int,
    quantile: float,
    samples: int,
    progress: Callable[[int], None] | None = None,
    percentiles: str = "shared",
) -> tuple[SimResult, dict[str, Any]]:
    """Replay with the loss and the drift monitor: ``(result, extra JSON keys)``.

    Extra keys: ``drift_retrain``, ``alarms`` (``ood`` events of the monitor),
    ``retrains`` (jobs whose forecasts took over) and, with a loss, ``loss_at_s``,
    ``loss_kind``, ``loss_fraction``, ``pre_loss_p90``, ``late_p90`` (seconds) and
    ``late_over_pre`` (:func:`pipelines.capacity.recovery`; ``null`` for an empty window).
    """
    from pipelines.capacity import recovery, run_capacity

    if event is not None:
        last = float(scenario.workload.arrival.max())
        if event.at_s >= last:
            fail(f"--loss-at {event.at_s:g} s is not before the last arrival ({last:.0f} s)")
    out = run_capacity(
        scenario,
        event,
        retrain=retrain,
        router=router,
        scaler=scaler,
        scaler_options=scaler_options,
        seed=seed,
        samples=samples,
        quantile=quantile,
        progress=progress,
        percentiles=percentiles,
    )
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


def print_table(extra: dict[str, Any]) -> None:
    """The capacity-loss figures as a second table (non-JSON output)."""

    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    table = Table(title="capacity loss and drift retraining")
    cols = ("loss at s", "pre-loss P90 s", "late P90 s", "late / pre", "alarms", "retrains")
    for col in cols:
        table.add_column(col, justify="right")
    table.add_row(
        fmt(extra.get("loss_at_s"), ",.0f"),
        fmt(extra.get("pre_loss_p90"), ".2f"),
        fmt(extra.get("late_p90"), ".2f"),
        fmt(extra.get("late_over_pre"), ".2f"),
        str(extra["alarms"]),
        str(extra["retrains"]),
    )
    console.print(table)
