"""Monte Carlo look-ahead of a cluster's next minutes from forecast draws (the ``forecast`` scaler).

For every candidate replica count the same ``P`` sample paths are replayed (common
random numbers): each path starts from the slots' free times (remaining work of the
running requests plus the queued requests' work, drawn from their forecasts), adds
Poisson arrivals at the recent rate whose service times are draws of recent requests'
forecasts, and serves them first come first served, each on the slot where it would finish
first, for its draw on that slot's device type (on one device type: the earliest free
slot; on several, a slow idle replica loses to a fast one that frees up soon enough,
as a forecast-driven router would decide). A candidate's replicas beyond the current
ones serve from the cold-start delay on; fewer replicas drop the least-loaded ones
first (as the simulator drains them).

>>> import numpy as np
>>> free = np.zeros((2, 1, 4))  # 2 replicas, 1 slot, 4 paths: idle
>>> times = np.array([[1.0, 2.0]] * 4)
>>> work = np.full((4, 2), 3.0)
>>> la = Lookahead(free, np.zeros((0, 1, 4)), times, np.full(4, 2), work, cold_start_s=10.0)
>>> # one replica: the second arrival waits 2 s
>>> la.latency_quantile([1, 2], current=2, quantile=0.95).round(2).tolist()
[5.0, 3.0]
>>> # two device types, the second replica 3x slower: the second arrival waits 2 s
>>> # for the fast one (done at 7 s) rather than take 9 s on the slow one
>>> per_device = np.stack([work, 3 * work])
>>> la = Lookahead(free, np.zeros((0, 1, 4)), times, np.full(4, 2), per_device, 10.0,
...                devices=np.array([0, 1]))
>>> la.latency_quantile([2], current=2, quantile=0.95).round(2).tolist()
[5.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Lookahead:
    """The inputs of one look-ahead (times in seconds from now).

    Attributes:
        serving: Free time of each slot of each serving replica per path ``(R, slots, P)``,
            replicas in the order they would be removed (least outstanding first).
        pending: Same for cold-starting replicas ``(Q, slots, P)`` (their ready time at least).
        arrivals: Arrival times per path ``(P, K)``, sorted along ``K``.
        counts: Arrivals per path ``(P,)`` (columns beyond are ignored).
        work: Service time of each arrival ``(P, K)`` on every device, or per device
            type ``(D, P, K)``.
        cold_start_s: When a replica added now starts serving.
        devices: Device type index of each serving replica ``(R,)`` (default: all
            ``scale_device``).
        scale_device: Device type of the pending replicas and of those a candidate adds.
        pending_first: A smaller count cancels cold-starting replicas before it drops
            serving ones (the cluster's ``newest`` and ``pending_first`` scale-downs);
            otherwise only serving replicas are dropped.
    """

    serving: F64
    pending: F64
    arrivals: F64
    counts: I64
    work: F64
    cold_start_s: float
    devices: I64 | None = None
    scale_device: int = 0
    pending_first: bool = False

    def latency_quantile(self, candidates: Sequence[int], current: int, quantile: float) -> F64:
        """The ``quantile`` of the arrivals' latency (wait + service) under each candidate count.

        Counted arrivals: all of them when the candidate does not add replicas, those
        after the cold start otherwise (earlier ones get the same capacity whatever is
        decided now). ``0`` when a candidate counts no arrival.

        Args:
            candidates: Replica counts (serving + pending) to compare.
            current: Replicas now (serving + pending).
            quantile: Level of the pooled latencies.
        """
        serving, pending = self.serving, self.pending
        n_serving, slots, paths = serving.shape
        per_device = self.work if self.work.ndim == 3 else self.work[None]
        scale = self.scale_device if self.work.ndim == 3 else 0
        devices = (
            np.full(n_serving, scale, dtype=np.int64)
            if self.devices is None or self.work.ndim == 2
            else np.asarray(self.devices, dtype=np.int64)
        )
        width = max(max(candidates), current) * slots
        free = np.full((len(candidates), paths, width), np.inf)
        slot_device = np.full((len(candidates), width), scale, dtype=np.int64)
        for c, n in enumerate(candidates):
            excess = max(current - n, 0)
            cancelled = min(excess, pending.shape[0]) if self.pending_first else 0
            removed = max(min(excess - cancelled, n_serving - 1), 0)  # the simulator keeps one
            keep = serving[removed:]
            still = pending[: pending.shape[0] - cancelled]  # the newest are cancelled first
            blocks = [keep.reshape(-1, paths), still.reshape(-1, paths)]
            added = max(n - current, 0) * slots
            blocks.append(np.full((added, paths), self.cold_start_s))
            stacked = np.concatenate(blocks, axis=0).T
            free[c, :, : stacked.shape[1]] = stacked
            slot_device[c, : keep.shape[0] * slots] = np.repeat(devices[removed:], slots)
        n_cand = len(candidates)
        flat = free.reshape(n_cand * paths, width)
        row = np.arange(n_cand * paths)
        path = row % paths
        dev = np.repeat(slot_device, paths, axis=0)
        live = np.tile(
            np.arange(self.arrivals.shape[1])[None, :] < self.counts[:, None], (n_cand, 1)
        )
        times = np.where(live, np.tile(self.arrivals, (n_cand, 1)), 0.0)  # no inf - inf
        latency = np.full((n_cand * paths, self.arrivals.shape[1]), np.nan)
        uniform = per_device.shape[0] == 1 or bool(np.all(dev == dev[:1, :1]))
        for k in range(int(self.counts.max(initial=0))):
            if uniform:  # one device type: the earliest free slot finishes first
                j = flat.argmin(axis=1)
            else:  # the slot where this arrival would finish first
                finish = np.maximum(flat, times[:, k : k + 1]) + per_device[dev, path[:, None], k]
                j = finish.argmin(axis=1)
            start = np.maximum(flat[row, j], times[:, k])
            work = per_device[dev[row, j], path, k]
            flat[row, j] = np.where(live[:, k], start + work, flat[row, j])
            latency[:, k] = np.where(live[:, k], start + work - times[:, k], np.nan)
        latency = latency.reshape(n_cand, paths, -1)
        out = np.zeros(len(candidates))
        for c, n in enumerate(candidates):
            counted = latency[c]
            if n > current:
                counted = np.where(self.arrivals >= self.cold_start_s, counted, np.nan)
            values = counted[np.isfinite(counted)]
            out[c] = float(np.quantile(values, quantile)) if len(values) else 0.0
        return out
