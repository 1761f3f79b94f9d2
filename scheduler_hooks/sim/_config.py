"""What a simulation is told (cluster, behaviour, capacity events) and what hooks see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class CapacityEvent:
    """Capacity lost at one instant.

    Attributes:
        at_s: When, seconds.
        fraction: Fraction of the serving replicas hit (rounded, at least one survives);
            ignored by ``degrade``.
        kind: ``slow`` (they keep serving at ``speed`` x nominal), ``remove`` (they
            vanish; their running and queued requests are routed again and restart) or
            ``degrade`` (a degraded pool: every replica of the device types ``devices``,
            those serving, cold-starting and added later, serves at ``speed`` x nominal;
            running requests finish their remaining work at the new speed).
        speed: Speed multiplier of slowed or degraded replicas (``1 - speed`` of their
            capacity is lost).
        devices: Device types a ``degrade`` hits (empty: every device type).
    """

    at_s: float
    fraction: float = 0.71
    kind: Literal["slow", "remove", "degrade"] = "slow"
    speed: float = 0.25
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    """One finished request, as the ``on_complete`` hook sees it.

    Attributes:
        request: Request id.
        device: Device type index of the replica that served it.
        replica: Replica index.
        arrival_s: First submission, seconds.
        start_s: Start of its (last) service, seconds.
        end_s: Completion, seconds (the simulation's current time).
    """

    request: int
    device: int
    replica: int
    arrival_s: float
    start_s: float
    end_s: float

    @property
    def service_s(self) -> float:
        """Observed service time (end - start), seconds: what a latency predictor forecasts."""
        return self.end_s - self.start_s


@dataclass(frozen=True)
class SimConfig:
    """How the cluster behaves.

    Attributes:
        cluster: ``((device type, count), ...)``; device names must be workload devices.
        slots: Requests a replica serves at once.
        cold_start_s: Seconds from a scale-up decision until the replica serves.
        scale_interval_s: Seconds between scaler decisions.
        scale_device: Device type a scale-up adds (default: the cluster's first).
        scale_down: Which replicas a scale-down gives up: ``least_loaded`` (serving
            replicas with the fewest outstanding requests; cold-starting ones keep
            starting), ``pending_first`` (cold-starting replicas are cancelled first,
            newest first, then the least-loaded serving ones drain) or ``newest``
            (cold-starting ones first, then the most recently added serving ones, as a
            Kubernetes ReplicaSet does: the initial cluster goes last).
        rate_window_s: Window of the arrival-rate estimate given to scalers.
        capacity_event: Optional capacity loss.
        seed: Seed of randomized routers.
    """

    cluster: tuple[tuple[str, int], ...]
    slots: int = 1
    cold_start_s: float = 60.0
    scale_interval_s: float = 10.0
    scale_device: str | None = None
    scale_down: Literal["least_loaded", "newest", "pending_first"] = "least_loaded"
    rate_window_s: float = 60.0
    capacity_event: CapacityEvent | None = None
    seed: int = 0
