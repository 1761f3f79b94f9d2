"""The scaling benchmark's Markdown: one section per trace, its plot and its verdict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks._report import save_png
from benchmarks._scaling_setup import (
    BELOW,
    BUDGET,
    CLAIRVOYANT_WINDOWS,
    HIGH,
    LOW,
    PLOTS,
    SETTINGS,
    START,
    STEPS,
    TRACES,
    meets,
    run_setting,
    scenario,
    slo_for,
)


def _below_range(name: str, slo: float) -> tuple[str, float]:
    """When no utilisation setting met the target in range: each one at loads below it.

    Returns:
        The Markdown line and the highest load below the range any setting met (0: none).
    """
    path, fmt, *_ = TRACES[name]
    parts, best = [], 0.0
    for label, scaler, options, cluster in SETTINGS:
        if scaler != "utilization":
            continue
        runs = [run_setting(path, fmt, scaler, options, cluster, x, slo)[1] for x in BELOW]
        ok = [x for x, s in zip(BELOW, runs, strict=True) if meets(s, slo)]
        best = max([best, *ok])
        parts.append(
            f"{label}: P95 {min(s['p95'] for s in runs):.1f}-{max(s['p95'] for s in runs):.1f} s, "
            f"mean replicas {min(s['mean_replicas'] for s in runs):.2f}-"
            f"{max(s['mean_replicas'] for s in runs):.2f}"
            + (f", meets the target at {', '.join(f'{x:g}' for x in ok)}" if ok else ", never")
        )
    loads = ", ".join(f"{x:g}" for x in BELOW)
    line = (
        f"- below the range, the utilisation baseline at loads {loads} (SLO {slo:.1f} s, "
        f"budget {BUDGET:g}; P95 and mean replicas over those loads, and where it meets both): "
        + "; ".join(parts)
    )
    return line, best


def _below_found(name: str, row: dict[str, Any], slo: float) -> str:
    """Whether a best setting also meets the target at the bisection grid's loads just below.

    Bisection assumes that meeting the target is monotone in the load; on a bursty trace
    it is not (at a lower load a scaler gives replicas back between bursts), so a found
    load can be an island. The three grid points below it (0.055 apart) say which.
    """
    if not row["load"]:
        return "-"
    path, fmt, *_ = TRACES[name]
    _, scaler, options, cluster = SETTINGS[row["index"]]
    step = (HIGH - LOW) / 2**STEPS
    marks = []
    for k in (1, 2, 3):
        x = row["load"] - k * step
        if x < LOW - 1e-9:
            break
        s = run_setting(path, fmt, scaler, options, cluster, x, slo)[1]
        marks.append(
            f"{x:.2f} {'meets' if meets(s, slo) else 'misses'} "
            f"(P95 {s['p95']:.1f} s, {s['mean_replicas']:.2f} replicas)"
        )
    return ", ".join(marks)


def _rate_variation(name: str) -> str:
    """How much the replayed arrival rate varies (30 windows), for the set-up lines."""
    path, fmt, *_ = TRACES[name]
    arrival = scenario(path, fmt, 1.0, START).workload.arrival
    counts, _ = np.histogram(arrival, bins=30)
    _, together = np.unique(arrival, return_counts=True)
    return (
        f"arrival rate over 30 equal windows: min {counts.min() / counts.mean():.2f} x, max "
        f"{counts.max() / counts.mean():.2f} x the mean; requests arriving at the same instant: "
        f"{together.mean():.1f} on average, at most {together.max()}"
    )


def _plot(name: str, rows: list[dict[str, Any]], load: float, slo: float) -> str:
    """Replicas and rolling P95 over time for the best baseline and forecast at one load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path, fmt, *_ = TRACES[name]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for row in rows:
        _, scaler, options, cluster = SETTINGS[[s[0] for s in SETTINGS].index(row["label"])]
        result, s = run_setting(path, fmt, scaler, options, cluster, load, slo)
        times, counts = zip(*result.timeline, strict=True)
        label = f"{row['label']} (P95 {s['p95']:.1f} s, {s['mean_replicas']:.2f} replicas)"
        top.step(np.asarray(times) / 3600, counts, where="post", label=label)
        mids, p95 = result.rolling(0.95, 1800.0)
        bottom.plot(mids / 3600, p95, label=row["label"])
    bottom.axhline(slo, color="grey", linestyle="--", label="SLO")
    top.set_ylabel("replicas")
    bottom.set_ylabel("P95 latency, s (30 min windows)")
    bottom.set_xlabel("hours")
    top.legend(fontsize=7)
    bottom.legend(fontsize=7)
    top.set_title(f"{name}: load {load:.2f} x start capacity")
    slug = name.split()[0]
    save_png(fig, PLOTS / f"scaling_{slug}.png", dpi=100)
    return f"![scaling {name}](benchmarks/plots/scaling_{slug}.png)"


def _row(row: dict[str, Any]) -> str:
    """One setting's table row (its best run, or none in range)."""
    b = row["best"]
    if not b:
        return (
            f"| {row['scaler']} | {row['label']} | none >= {LOW:.2f} | - | - | - | - "
            f"| {row['seconds']:.0f} |"
        )
    return (
        f"| {row['scaler']} | {row['label']} | {row['load']:.2f} | {b['rate_rps']:.3f} "
        f"| {b['p95']:.2f} | {b['slo_attainment']:.1%} | {b['mean_replicas']:.2f} "
        f"| {row['seconds']:.0f} |"
    )


def _verdict(base: float, fore: float, floor: float, bounds: dict[float, float]) -> str:
    """Whether the forecast scaler sustains 1.5x the best utilisation baseline's load.

    Args:
        base: The baseline's highest load in range (0: none).
        fore: The forecast scaler's highest load in range (0: none).
        floor: The baseline's highest load below the range (0: none).
        bounds: Clairvoyant bound per window length, seconds.
    """
    fine = bounds[min(bounds)]
    if base:
        verdict = "met" if fore >= 1.5 * base else "not met"
        if fine < 1.5 * base:
            verdict += (
                f"; out of reach in this set-up: even the clairvoyant bound with "
                f"{min(bounds):.0f} s windows is {fine / base:.2f}x"
            )
    elif floor or not fore:  # a baseline below the range, or no forecast at all
        verdict = "met" if floor and fore >= 1.5 * floor else "not met"
    else:
        verdict = (
            f"met only in the limit: the baseline sustains none of the loads tried, down to "
            f"{BELOW[0]:g}, so any ratio is above {fore / BELOW[0]:.0f}x"
        )
    return verdict


def table(
    name: str, rows: list[dict[str, Any]], clairvoyant: Callable[[str, float], float]
) -> tuple[str, float]:
    """The Markdown section of one trace and its forecast / utilisation ratio.

    Args:
        name: The trace (a key of ``TRACES``).
        rows: Each setting's bisection outcome, in setting order.
        clairvoyant: The clairvoyant bound of a trace for a window length, seconds.
    """
    path, fmt, factor, _ = TRACES[name]
    slo = slo_for(path, fmt, factor)
    lines = [
        f"### {name}: P95 SLO {slo:.1f} s ({factor:g} x the P95 service time on h100)",
        "",
        f"- {_rate_variation(name)}",
        "",
        "| scaler | setting | max load x start capacity | req/s | P95 s | SLO attainment "
        "| mean replicas | bisection s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [_row(row) for row in rows]
    best = {
        kind: max((r for r in rows if r["scaler"] == kind), key=lambda r: r["load"])
        for kind in ("none", "utilization", "forecast")
    }
    util, fore, fixed = best["utilization"], best["forecast"], best["none"]
    bounds = {w: clairvoyant(name, w) for w in CLAIRVOYANT_WINDOWS}
    below, floor = ("", 0.0) if util["load"] else _below_range(name, slo)
    verdict = _verdict(util["load"], fore["load"], floor, bounds)

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b else f"undefined (the {util['scaler']} baseline met nothing)"

    lines += [
        "",
        f"- best utilisation baseline: {util['label']} at {util['load']:.2f}; best forecast: "
        f"{fore['label']} at {fore['load']:.2f}; fixed cluster at the budget: {fixed['load']:.2f}",
        f"- **forecast / utilization sustained rate: {ratio(fore['load'], util['load'])}** "
        f"(bar: >= 1.5x; {verdict}); "
        f"forecast / fixed at budget: {ratio(fore['load'], fixed['load'])}",
        f"- below the loads found (is the found load an island?): best baseline: "
        f"{_below_found(name, util, slo)}; best forecast: {_below_found(name, fore, slo)}",
        "- clairvoyant bound (per window the fewest fixed replicas, chosen knowing the future, "
        "keeping the run-wide P95 within the SLO; free cold starts and changes): "
        + "; ".join(
            f"{w:.0f} s windows {b:.2f} ({ratio(b, util['load'])} over this baseline)"
            for w, b in bounds.items()
        ),
        *([below] if below else []),
        "",
    ]
    lines.append(_plot(name, [util, fore], max(fore["load"], LOW), slo))
    lines.append("")
    return "\n".join(lines), fore["load"] / util["load"] if util["load"] else float("nan")
