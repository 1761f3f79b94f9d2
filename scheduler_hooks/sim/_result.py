"""Per-request outcomes of a simulation and their summary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scheduler_hooks.sim._workload import F64, I64


@dataclass(frozen=True, eq=False)
class SimResult:
    """What happened to every request.

    Attributes:
        arrival: First submission, seconds.
        start: Start of the (last) service, seconds.
        end: Completion, seconds.
        replica: Replica index that completed it.
        replica_device: Device type index of each replica ever created.
        replica_seconds: Sum over replicas of the time they existed (cold start
            included), seconds.
        timeline: ``(time, replicas existing)`` at every change.
        restarts: Times each request was restarted after its replica was removed.
        devices: Device type names.
        slots: Slots per replica.
    """

    arrival: F64
    start: F64
    end: F64
    replica: I64
    replica_device: I64
    replica_seconds: float
    timeline: tuple[tuple[float, int], ...]
    restarts: I64
    devices: tuple[str, ...]
    slots: int

    @property
    def latency(self) -> F64:
        """End-to-end latency (queueing + service), seconds."""
        return np.asarray(self.end - self.arrival, dtype=np.float64)

    def summary(self, slo_s: float) -> dict[str, float]:
        """P50/P90/P95/P99 latency, mean, SLO attainment and replica-seconds.

        Args:
            slo_s: Latency objective, seconds (attainment = share of requests within it).
        """
        lat = self.latency
        p50, p90, p95, p99 = np.percentile(lat, [50, 90, 95, 99])
        return {
            "p50": float(p50),
            "p90": float(p90),
            "p95": float(p95),
            "p99": float(p99),
            "mean": float(lat.mean()),
            "slo_s": float(slo_s),
            "slo_attainment": float(np.mean(lat <= slo_s)),
            "replica_seconds": self.replica_seconds,
            "requests": float(len(lat)),
            "makespan_s": float(np.nanmax(self.end) - np.nanmin(self.arrival)),
        }

    def rolling(self, quantile: float, window_s: float) -> tuple[F64, F64]:
        """A latency quantile over arrival-time windows: (window mid-points, values).

        Windows without requests are skipped.
        """
        t0, t1 = float(np.nanmin(self.arrival)), float(np.nanmax(self.arrival))
        edges = np.arange(t0, t1 + window_s, window_s)
        which = np.clip(np.searchsorted(edges, self.arrival, side="right") - 1, 0, None)
        lat = self.latency
        mids, vals = [], []
        for k in range(len(edges) - 1):
            these = lat[which == k]
            if len(these):
                mids.append((edges[k] + edges[k + 1]) / 2)
                vals.append(float(np.quantile(these, quantile)))
        return np.asarray(mids), np.asarray(vals)
