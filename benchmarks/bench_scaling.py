"""Scaling on real traces: the highest request rate each scaler sustains at a P95 SLO on a budget.

Issue 7's bar: forecast-driven scaling sustains at least 1.5x the request rate of the
utilisation baseline at the same P95 SLO and the same replica budget.

Set-up (per trace): the cluster starts at ``h100:2`` (also the minimum), may grow to 8
h100 replicas, each serving one request at a time; a scale-up serves after a 60 s cold
start (paid for); every scaler decides every 10 s with a 30 s cooldown and a 300 s
scale-down stabilization; router ``least_loaded``. A run meets the target when its P95
latency is within the SLO and its mean replicas (replica-seconds / makespan) within the
budget of 4. Each scaler setting's highest load meeting both (x the capacity of the
starting cluster) is found by bisection over [0.25, 2.0] (5 steps: 0.055 resolution).
When no utilisation setting meets it in that range, each one is also run at loads 0.05,
0.1, 0.15 and 0.2, so a missing baseline is shown, not assumed.

Fair tuning: the utilisation baseline (HPA rule ``ceil(serving x utilisation / target)``
with HPA's 10% tolerance plus a queue threshold, KEDA-style, of 1, 2, 4 or 8 waiting
requests per replica; and the older step rule, +1 above 0.8 / -1 below 0.3) picks its
best setting from a grid of 22; the forecast scaler picks its look-ahead quantile from a
grid of 6 (its arrival model is ``auto``: renewal while the gaps between bursts are
regular, as Mooncake's, else Poisson, as on Azure). A fixed cluster at the
budget (``none`` with 4 replicas) is the reference every scaler must beat to be worth
running, and a clairvoyant per-window schedule (30-minute and 2-minute windows) bounds
what any scaler could show. Predictors are the routing benchmark's (same cache).
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from benchmarks._scaling_report import table
from benchmarks._scaling_setup import (
    BUDGET,
    CAP,
    COLD_START_S,
    HIGH,
    LOW,
    PLOTS,
    SETTINGS,
    START,
    STEPS,
    TRACES,
    meets,
    prepared,
    run_setting,
    slo_for,
)


def _max_load(job_args: tuple[str, int]) -> dict[str, Any]:
    """Bisection of one (trace, setting): the highest load meeting the SLO on the budget."""
    name, index = job_args
    path, fmt, factor, _ = TRACES[name]
    label, scaler, options, cluster = SETTINGS[index]
    slo = slo_for(path, fmt, factor)
    lo, hi = LOW, HIGH
    best: dict[str, float] = {}
    started = time.perf_counter()
    for _ in range(STEPS):
        mid = (lo + hi) / 2
        _, s = run_setting(path, fmt, scaler, options, cluster, mid, slo)
        if meets(s, slo):
            lo, best = mid, s
        else:
            hi = mid
    found = lo if best else 0.0
    seconds = time.perf_counter() - started
    print(f"scaling: {name} / {label}: {found:.3f} ({seconds:.0f} s)", file=sys.stderr, flush=True)
    return {
        "index": index,
        "trace": name,
        "label": label,
        "scaler": scaler,
        "load": found,
        "best": best,
        "seconds": seconds,
    }


def _clairvoyant_replicas(name: str, load: float, window_s: float = 1800.0) -> float:
    """Mean replicas of a clairvoyant schedule meeting the run-wide P95 SLO at ``load``.

    Each ``window_s`` window of arrivals gets its own fixed replica count (2 to ``CAP``),
    chosen knowing the future: from all at ``CAP``, greedily take a replica away where
    that adds the fewest SLO misses per replica-second saved, while at most 5% of all
    requests miss. Latencies per window come from whole-trace runs of fixed clusters;
    cold starts and transitions are free. An optimistic bound for any scaler.
    """
    path, fmt, factor, _ = TRACES[name]
    slo = slo_for(path, fmt, factor)
    late: dict[int, Any] = {}
    for k in range(2, CAP + 1):
        result, _ = run_setting(path, fmt, "none", {}, f"h100:{k}", load, slo)
        late[k] = result.latency > slo
    arrival = result.arrival
    edges = np.arange(0.0, float(arrival.max()) + window_s, window_s)
    which = np.searchsorted(edges, arrival, side="right") - 1
    n_win = int(which.max()) + 1
    span = np.maximum(np.diff(np.append(edges[:n_win], arrival.max())), 1.0)
    misses = {k: np.bincount(which, weights=late[k], minlength=n_win) for k in late}
    count = np.full(n_win, CAP)
    total, allowed = float(misses[CAP].sum()), 0.05 * len(arrival)
    while True:
        options = [
            ((misses[count[i] - 1][i] - misses[count[i]][i]) / span[i], i)
            for i in range(n_win)
            if count[i] > 2
        ]
        options = [(c, i) for c, i in options if total + c * span[i] <= allowed]
        if not options:
            break
        _, i = min(options)
        total += misses[count[i] - 1][i] - misses[count[i]][i]
        count[i] -= 1
    return float((count * span).sum() / span.sum())


def _clairvoyant(name: str, window_s: float = 1800.0) -> float:
    """Highest load whose clairvoyant schedule fits the budget (bisection as for the scalers)."""
    lo, hi = LOW, HIGH
    for _ in range(STEPS):
        mid = (lo + hi) / 2
        fits = _clairvoyant_replicas(name, mid, window_s) <= BUDGET
        lo, hi = (mid, hi) if fits else (lo, mid)
    return lo


def run() -> str:
    """Every scaler setting on every trace; Markdown."""
    PLOTS.mkdir(parents=True, exist_ok=True)
    for path, fmt, *_ in TRACES.values():  # train (or load) the predictors once, before forking
        prepared(path, fmt)
    jobs = [(name, i) for name, (*_, run) in TRACES.items() for i in run]
    jobs.sort(key=lambda j: SETTINGS[j[1]][1] != "forecast")  # the slow ones first
    workers = int(os.environ.get("TAILCAST_BENCH_WORKERS", "2"))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(_max_load, jobs))
    parts = [
        f"Start `{START}` (also the minimum), at most {CAP} h100 replicas, one request per "
        f"replica at a time, replica budget {BUDGET:g} replicas on average (replica-seconds / "
        f"makespan, cold starts included), cold start {COLD_START_S:.0f} s, decisions every "
        "10 s, cooldown 30 s, scale-down stabilization 300 s (the same for every scaler), "
        "router least_loaded, seed 0. Highest load meeting the P95 SLO and the budget, by "
        f"bisection over [{LOW}, {HIGH}] x the starting cluster's capacity ({STEPS} steps). "
        "`forecast` = the look-ahead rule (Monte Carlo of queued + arriving work over the "
        "cold start and the next 60 s from the forecast draws, see docs/scheduling.md); its "
        "quantile is tuned on a grid (6 settings) as the baseline's target and queue "
        "threshold are (22 settings); its arrival model is `auto` (renewal while the gaps "
        "between bursts are regular, else Poisson bursts). Simulated latencies are "
        "deterministic; bisection wall times are provisional (shared 2-core machine).",
        "",
    ]
    for name in TRACES:
        rows = sorted((r for r in done if r["trace"] == name), key=lambda r: r["index"])
        text, _ = table(name, rows, _clairvoyant)
        parts.append(text)
    return "\n".join(parts)
