"""The ``forecast`` scaler's steady-state rule: the KEDA/Ray hooks' plan (no look-ahead).

The hooks know a recent arrival rate, the recent requests' forecast draws and the
replicas' queues, but cannot replay the next minutes; two needs are computed and the
larger wins (:meth:`~scheduler_hooks.scaling.ForecastScaler.target` with
``horizon_s=None``):

* :func:`arrival_need`: the fewest replicas whose predicted latency quantile for the
  recent arrival rate meets the SLO (M/G/c, Allen-Cunneen);
* :func:`backlog_need`: the quantile of the outstanding work must drain within the SLO.
"""

from __future__ import annotations

import math

import numpy as np

from scheduler_hooks.scaling._base import ScalingView


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (Erlang C).

    Args:
        servers: ``c``.
        offered: Offered load ``a = lambda / mu`` in servers (< ``servers``).

    >>> round(erlang_c(1, 0.5), 3), round(erlang_c(2, 1.0), 3)
    (0.5, 0.333)
    """
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    rho = offered / servers
    return blocking / (1.0 - rho * (1.0 - blocking))


def arrival_need(
    view: ScalingView,
    slo_s: float,
    quantile: float,
    max_recent: int,
    min_replicas: int,
    max_replicas: int,
) -> int:
    """Fewest replicas whose predicted ``quantile`` of latency at the recent rate meets ``slo_s``.

    Service draws are the forecast book's draws of the last ``max_recent`` requests on
    the scale-up device type; the wait is the M/G/c approximation of Allen-Cunneen
    (Erlang C probability of waiting, an exponential wait scaled by ``(1 + cs^2) / 2``
    with ``cs^2`` the squared coefficient of variation of the forecast service), so
    heavy-tailed forecasts ask for more headroom than a utilisation threshold would.

    Returns:
        A count in ``[min_replicas, max_replicas]`` (``min_replicas`` with no recent
        request or no arrivals; ``max_replicas`` when none meets the SLO).
    """
    book = view.book
    assert book is not None
    recent = list(view.recent)[-max_recent:]
    if not recent or view.arrival_rate <= 0:
        return min_replicas
    service = np.concatenate([book.samples(r)[view.device] for r in recent])
    mean = float(service.mean())
    cs2 = float(service.var()) / mean**2 if mean > 0 else 0.0
    offered = view.arrival_rate * mean
    rng = np.random.default_rng(0)
    waits_u, wait_e = rng.random(len(service)), rng.exponential(1.0, len(service))
    first = max(min_replicas, math.floor(offered / view.slots) + 1)
    for n in range(first, max_replicas + 1):
        servers = n * view.slots
        p_wait = erlang_c(servers, offered)
        rate = (servers / mean - view.arrival_rate) * 2.0 / (1.0 + cs2)
        latency = service + np.where(waits_u < p_wait, wait_e / rate, 0.0)
        if float(np.quantile(latency, quantile)) <= slo_s:
            return n
    return max_replicas


def backlog_need(view: ScalingView, slo_s: float, quantile: float) -> int:
    """Replicas so that the ``quantile`` of the outstanding work drains within ``slo_s``.

    Outstanding work: the remaining service of running requests (conditional on the
    time already served) plus the queued requests' work, summed per Monte Carlo draw
    of the forecast book, divided by ``slo_s`` x the scale-up type's slots (unclipped).
    """
    book = view.book
    assert book is not None
    reqs: list[int] = []
    devs: list[int] = []
    done: list[float] = []
    queued = np.zeros(book.n_samples)
    for rep in view.replicas:
        reqs.extend(rep.running)
        devs.extend([rep.device] * len(rep.running))
        done.extend(view.now - t for t in rep.started)
        for q in rep.queue:
            queued += book.samples(q)[rep.device]
    total = queued + book.remaining(reqs, devs, np.asarray(done, dtype=np.float64)).sum(axis=0)
    return math.ceil(float(np.quantile(total, quantile)) / (slo_s * view.slots))
