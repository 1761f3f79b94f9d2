"""Completion time of a new request on each replica: slots, FCFS queue, then its own service.

A replica serves up to ``slots`` requests at once; waiting requests start, in FCFS
order, on the first slot to free. The new request joins the queue's end, so it
starts when the last queued request has started and a slot has freed again. These
functions compute that for arrays of draws ``(S,)``: Monte Carlo draws for
forecast-driven routers, one exact value (``S = 1``) for the oracle.

>>> free = np.array([[2.0], [5.0]])  # two slots, busy for 2 s and 5 s
>>> float(slot_completion(free, [np.array([4.0])], np.array([1.0]))[0])
6.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from scheduler_hooks._book import ForecastBook
from scheduler_hooks._state import ReplicaState

F64 = npt.NDArray[np.float64]


def slot_completion(free: F64, queued: Sequence[F64], own: F64) -> F64:
    """Time until the new request completes, per draw.

    Args:
        free: Seconds until each slot frees, ``(slots, S)`` (0 for an idle slot).
        queued: Service of each waiting request in FCFS order, each ``(S,)``.
        own: The new request's service, ``(S,)``.

    Returns:
        ``(S,)`` seconds from now.
    """
    free = free.copy()
    if free.shape[0] == 1:
        total = free[0] + (np.sum(queued, axis=0) if len(queued) else 0.0)
        return np.asarray(total + own, dtype=np.float64)
    cols = np.arange(free.shape[1])
    for work in queued:
        slot = np.argmin(free, axis=0)
        free[slot, cols] += work
    return np.asarray(free.min(axis=0) + own, dtype=np.float64)


def forecast_completion(
    request: int,
    replicas: Sequence[ReplicaState],
    book: ForecastBook,
    now: float,
    *,
    shared: bool = False,
    columns: Sequence[int] | None = None,
) -> F64:
    """Draws of the new request's completion time on every replica, ``(R, S)`` seconds.

    Running requests' remaining service is drawn conditional on their elapsed time
    (:meth:`ForecastBook.remaining`); queued requests and the new one use their
    draws on the replica's device type. Speed changes are invisible here: a
    forecast describes nominal service.

    Args:
        request: The new request.
        replicas: The candidates.
        book: Forecast draws.
        now: Current time, seconds.
        shared: Share one random percentile between every request in a draw
            (comonotone: draw ``s`` is every request's ``s``-th smallest draw), so
            the spread of a queue's work grows with its length like the spread of a
            single request's. ``False``: each request's own independent percentiles.
        columns: With ``shared``, only these draws (columns of the sorted draws);
            the completion time is nondecreasing in every request's service, so
            column ``s`` of the result is still its ``s``-th smallest draw.

    Returns:
        ``(R, S)`` seconds, or ``(R, len(columns))``.
    """
    reqs: list[int] = []
    devs: list[int] = []
    done: list[float] = []
    for rep in replicas:
        reqs.extend(rep.running)
        devs.extend([rep.device] * len(rep.running))
        done.extend(now - t for t in rep.started)
    rem = book.remaining(reqs, devs, np.asarray(done, dtype=np.float64))
    draws: Callable[[int], F64] = book.samples
    if shared:
        cols = slice(None) if columns is None else list(columns)
        rem = np.sort(rem, axis=1)[:, cols]
        draws = lambda r: book.sorted_samples(r)[:, cols]  # noqa: E731
    s = rem.shape[1]
    own = draws(request)
    out = np.empty((len(replicas), s))
    row = 0
    for i, rep in enumerate(replicas):
        free = np.zeros((rep.slots, s))
        n = len(rep.running)
        free[:n] = rem[row : row + n]
        row += n
        queued = [draws(q)[rep.device] for q in rep.queue]
        out[i] = slot_completion(free, queued, own[rep.device])
    return out
