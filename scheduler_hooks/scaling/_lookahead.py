"""Monte Carlo look-ahead of a cluster's next minutes from forecast draws (the ``forecast`` scaler).

For every candidate replica count the same ``P`` sample paths are replayed (common
random numbers): each path starts from the slots' free times (remaining work of the
running requests plus the queued requests' work, drawn from their forecasts), adds
Poisson arrivals at the recent rate whose service times are draws of recent requests'
forecasts, and serves them first come first served on the earliest free slot. A
candidate's replicas beyond the current ones serve from the cold-start delay on;
fewer replicas drop the least-loaded ones first (as the simulator drains them).

>>> import numpy as np
>>> free = np.zeros((2, 1, 4))  # 2 replicas, 1 slot, 4 paths: idle
>>> times = np.array([[1.0, 2.0]] * 4)
>>> work = np.full((4, 2), 3.0)
>>> la = Lookahead(free, np.zeros((0, 1, 4)), times, np.full(4, 2), work, cold_start_s=10.0)
>>> # one replica: the second arrival waits 2 s
>>> la.latency_quantile([1, 2], current=2, quantile=0.95).round(2).tolist()
[5.0, 3.0]
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
        work: Service time of each arrival on the scale-up device ``(P, K)``.
        cold_start_s: When a replica added now starts serving.
    """

    serving: F64
    pending: F64
    arrivals: F64
    counts: I64
    work: F64
    cold_start_s: float

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
        width = max(max(candidates), current) * slots
        free = np.full((len(candidates), paths, width), np.inf)
        for c, n in enumerate(candidates):
            removed = min(max(current - n, 0), n_serving - 1)  # the simulator keeps one
            keep = serving[max(removed, 0) :]
            blocks = [keep.reshape(-1, paths), pending.reshape(-1, paths)]
            added = max(n - current, 0) * slots
            blocks.append(np.full((added, paths), self.cold_start_s))
            stacked = np.concatenate(blocks, axis=0).T
            free[c, :, : stacked.shape[1]] = stacked
        n_cand = len(candidates)
        flat = free.reshape(n_cand * paths, width)
        row = np.arange(n_cand * paths)
        live = np.tile(
            np.arange(self.arrivals.shape[1])[None, :] < self.counts[:, None], (n_cand, 1)
        )
        times = np.where(live, np.tile(self.arrivals, (n_cand, 1)), 0.0)  # no inf - inf
        work = np.tile(self.work, (n_cand, 1))
        latency = np.full((n_cand * paths, self.arrivals.shape[1]), np.nan)
        for k in range(int(self.counts.max(initial=0))):
            j = flat.argmin(axis=1)
            start = np.maximum(flat[row, j], times[:, k])
            flat[row, j] = np.where(live[:, k], start + work[:, k], flat[row, j])
            latency[:, k] = np.where(live[:, k], start + work[:, k] - times[:, k], np.nan)
        latency = latency.reshape(n_cand, paths, -1)
        out = np.zeros(len(candidates))
        for c, n in enumerate(candidates):
            counted = latency[c]
            if n > current:
                counted = np.where(self.arrivals >= self.cold_start_s, counted, np.nan)
            values = counted[np.isfinite(counted)]
            out[c] = float(np.quantile(values, quantile)) if len(values) else 0.0
        return out
