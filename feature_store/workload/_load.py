"""Time-varying load per replica: a diurnal curve times bursts, sampled at submission.

Utilisation ``u`` is the mean demand (requests in the system) as a share of a
replica's maximum batch. For a replica (one device type serving one model):

    u(t) = base x replica_factor x diurnal(t) x burst(t)

* ``diurnal(t) = 1 + A cos(2 pi (hour_utc(t) - peak_hour) / 24)`` (mean 1 over a day);
* ``burst(t)`` is piecewise constant over ``burst_interval_s`` bins, a log-normal
  AR(1) process (mean 1) per replica, so load comes in correlated waves;
* ``replica_factor`` is a fixed log-normal draw per replica (some pools run hotter).

At a submission the demand is Poisson(``u x max_batch``): up to ``max_batch`` requests
run (``num_running``), the rest wait (``num_waiting``). KV-cache utilisation is the
running requests over the sequences the KV pool holds, with log-normal noise.

The same ``diurnal`` curve modulates the arrival rate of new workflows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_DAY_S = 86_400.0


class LoadConfig(BaseModel):
    """Shape of the load curve.

    Attributes:
        base_utilization: Mean demand as a share of a replica's maximum batch.
        replica_sigma: Log-normal sigma of the fixed per-replica load factor.
        diurnal_amplitude: Relative amplitude ``A`` of the daily cycle, in [0, 1).
        peak_hour_utc: Hour of the day (UTC) of peak load.
        burst_sigma: Log-normal sigma of the burst multiplier.
        burst_correlation: AR(1) correlation of consecutive burst bins.
        burst_interval_s: Length of a burst bin, seconds.
        max_utilization: Cap on ``u`` (overload saturates here).
        kv_noise_sigma: Log-normal sigma of KV-cache utilisation around its mean.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_utilization: Annotated[float, Field(gt=0, le=2)] = 0.5
    replica_sigma: Annotated[float, Field(ge=0, le=2)] = 0.25
    diurnal_amplitude: Annotated[float, Field(ge=0, lt=1)] = 0.5
    peak_hour_utc: Annotated[float, Field(ge=0, lt=24)] = 15.0
    burst_sigma: Annotated[float, Field(ge=0, le=2)] = 0.4
    burst_correlation: Annotated[float, Field(ge=0, lt=1)] = 0.8
    burst_interval_s: Annotated[float, Field(gt=0)] = 300.0
    max_utilization: Annotated[float, Field(gt=0, le=10)] = 3.0
    kv_noise_sigma: Annotated[float, Field(ge=0, le=2)] = 0.15


def diurnal(t_s: FloatArray, start: datetime, config: LoadConfig) -> FloatArray:
    """Daily load multiplier (mean 1 over a day) at ``t_s`` seconds after ``start``.

    Args:
        t_s: Seconds since ``start``.
        start: Timezone-aware start of the workload.
        config: Amplitude and peak hour.

    Returns:
        ``1 + A cos(2 pi (hour - peak) / 24)`` for each time.

    >>> from datetime import UTC
    >>> t = np.array([0.0, 12 * 3600.0])
    >>> diurnal(t, datetime(2025, 1, 1, 15, tzinfo=UTC), LoadConfig()).round(3).tolist()
    [1.5, 0.5]
    """
    hour = ((start.timestamp() + t_s) % _DAY_S) / 3600.0
    phase = 2.0 * np.pi * (hour - config.peak_hour_utc) / 24.0
    return np.asarray(1.0 + config.diurnal_amplitude * np.cos(phase), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class LoadSample:
    """Replica state seen by requests at submission.

    Attributes:
        num_running: Requests in the running batch.
        num_waiting: Requests queued.
        kv_cache_util: KV-cache utilisation in [0, 1].
    """

    num_running: IntArray
    num_waiting: IntArray
    kv_cache_util: FloatArray


class LoadCurve:
    """Load of every replica over time, drawn once per workload.

    Args:
        config: Shape of the curve.
        start: Timezone-aware start of the workload.
        horizon_s: Seconds covered by distinct burst bins (later times reuse the last).
        n_replicas: Number of replicas (device x model pairs).
        rng: Random source (consumed here, at construction).
    """

    def __init__(
        self,
        config: LoadConfig,
        start: datetime,
        horizon_s: float,
        n_replicas: int,
        rng: np.random.Generator,
    ) -> None:
        self._config = config
        self._start = start
        n_bins = int(horizon_s // config.burst_interval_s) + 1
        rho, sigma = config.burst_correlation, config.burst_sigma
        shocks = rng.standard_normal((n_bins, n_replicas)) * sigma * np.sqrt(1 - rho**2)
        log_burst = np.empty((n_bins, n_replicas))
        log_burst[0] = rng.standard_normal(n_replicas) * sigma
        for i in range(1, n_bins):
            log_burst[i] = rho * log_burst[i - 1] + shocks[i]
        self._burst = np.exp(log_burst - sigma**2 / 2)
        replica = rng.lognormal(-(config.replica_sigma**2) / 2, config.replica_sigma, n_replicas)
        self._base = config.base_utilization * replica

    def utilization(self, t_s: FloatArray, replica: IntArray) -> FloatArray:
        """Mean demand over maximum batch for each (time, replica).

        Args:
            t_s: Seconds since the start of the workload.
            replica: Replica index of each time.

        Returns:
            Utilisation ``u``, capped at ``max_utilization``.
        """
        bins = np.minimum(
            (t_s // self._config.burst_interval_s).astype(np.int64), len(self._burst) - 1
        )
        u = (
            self._base[replica]
            * diurnal(t_s, self._start, self._config)
            * self._burst[bins, replica]
        )
        return np.minimum(u, self._config.max_utilization)

    def sample(
        self,
        t_s: FloatArray,
        replica: IntArray,
        max_batch: IntArray,
        kv_capacity_seqs: FloatArray,
        rng: np.random.Generator,
    ) -> LoadSample:
        """Draw the replica state seen by requests submitted at ``t_s``.

        Args:
            t_s: Submission times, seconds since the start of the workload.
            replica: Replica index per request.
            max_batch: Maximum batch of each request's replica.
            kv_capacity_seqs: Typical sequences the replica's KV pool holds.
            rng: Random source.

        Returns:
            Running and waiting counts and KV-cache utilisation per request.
        """
        demand = rng.poisson(self.utilization(t_s, replica) * max_batch)
        running = np.minimum(demand, max_batch)
        noise = rng.lognormal(0.0, self._config.kv_noise_sigma, len(t_s))
        kv = np.clip(running / kv_capacity_seqs * noise, 0.0, 1.0)
        return LoadSample(
            num_running=running.astype(np.int64),
            num_waiting=(demand - running).astype(np.int64),
            kv_cache_util=kv,
        )
