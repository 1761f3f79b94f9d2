"""The workflow benchmark's pooling over folds, coverage tests and figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._report import save_png
from training.workflow import bonferroni, coverage_pvalue

#: Remaining-time measures pooled over folds: name -> key in the evaluation's curve.
MEASURES = {
    "width": "width_10_90_s",
    "coverage": "coverage_10_90",
    "below": "below_10",
    "above": "above_90",
    "raw_width": "raw_width_10_90_s",
    "raw_coverage": "raw_coverage_10_90",
    "raw_above": "raw_above_90",
}
#: Remaining-time bar: coverage within this of nominal (0.8 for 10-90, 0.9 for q0.9).
COVERAGE_TOLERANCE = 0.05
#: Family-wise level of the binomial coverage tests (Bonferroni over the depths).
ALPHA = 0.05


def pool(results: list[dict[str, Any]], path: tuple[str, ...]) -> dict[str, Any]:
    """Task-weighted mean of ``mean_pinball`` and ``coverage`` at ``path`` over folds."""
    weights = np.array([r["tasks"] for r in results], dtype=np.float64)

    def at(r: dict[str, Any]) -> dict[str, Any]:
        out: Any = r
        for key in path:
            out = out[key]
        return dict(out)

    parts = [at(r) for r in results]
    return {
        "mean_pinball": float(np.average([p["mean_pinball"] for p in parts], weights=weights)),
        "coverage": {
            k: float(np.average([p["coverage"][k] for p in parts], weights=weights))
            for k in parts[0]["coverage"]
        },
    }


def curve(results: list[dict[str, Any]]) -> dict[float, dict[str, float]]:
    pooled: dict[float, dict[str, float]] = {}
    for r in results:
        c = r["remaining"]
        for i, k in enumerate(c["steps_done"]):
            row = pooled.setdefault(k, dict.fromkeys(("tasks", *MEASURES), 0.0))
            n = c["tasks"][i]
            row["tasks"] += n
            for key, source in MEASURES.items():
                row[key] += n * c[source][i]
    return {
        k: {"tasks": v["tasks"], **{m: v[m] / v["tasks"] for m in MEASURES}}
        for k, v in sorted(pooled.items())
        if v["tasks"] >= 20
    }


def cohorts(results: list[dict[str, Any]]) -> dict[int, dict[float, dict[str, float]]]:
    """Pool the cohort counts over folds; add coverages and Bonferroni-adjusted p-values.

    Per cohort and depth: ``tasks``, mean ``width`` (s), coverage of the 10-90 interval
    (``cov``) and of q0.9 (``cov90``), and the two-sided binomial p-values of those
    counts against 0.8 and 0.9, each multiplied by the number of depths of the cohort
    (``p``, ``p90``; raw: ``p_raw``, ``p90_raw``).
    """
    pooled: dict[int, dict[float, dict[str, float]]] = {}
    for r in results:
        for c, cur in r["cohorts"].items():
            rows = pooled.setdefault(int(c), {})
            for i, k in enumerate(cur["steps_done"]):
                row = rows.setdefault(k, dict.fromkeys(("tasks", "wsum", "in", "b90"), 0.0))
                n = cur["tasks"][i]
                row["tasks"] += n
                row["wsum"] += n * cur["width_10_90_s"][i]
                row["in"] += cur["inside_10_90"][i]
                row["b90"] += cur["below_q90"][i]
    out: dict[int, dict[float, dict[str, float]]] = {}
    for c, rows in sorted(pooled.items()):
        curve: dict[float, dict[str, float]] = {}
        for k, v in sorted(rows.items()):
            n = int(v["tasks"])
            curve[k] = {
                "tasks": n,
                "width": v["wsum"] / n,
                "cov": v["in"] / n,
                "cov90": v["b90"] / n,
                "p_raw": coverage_pvalue(int(v["in"]), n, 0.8),
                "p90_raw": coverage_pvalue(int(v["b90"]), n, 0.9),
            }
        for key in ("p", "p90"):
            adjusted = bonferroni([row[f"{key}_raw"] for row in curve.values()])
            for row, p in zip(curve.values(), adjusted, strict=True):
                row[key] = p
        out[c] = curve
    return out


def all_tasks_pvalues(curve: dict[float, dict[str, float]]) -> None:
    """Add binomial p-values (``p``, ``p90``: Bonferroni-adjusted; ``*_raw``) to the curve."""
    for key, nominal, field in (("p", 0.8, "coverage"), ("p90", 0.9, "above")):
        raw = [
            coverage_pvalue(
                round((v[field] if field == "coverage" else 1.0 - v[field]) * v["tasks"]),
                int(v["tasks"]),
                nominal,
            )
            for v in curve.values()
        ]
        for v, p, r in zip(curve.values(), bonferroni(raw), raw, strict=True):
            v[key] = p
            v[f"{key}_raw"] = r


def plot_cohorts(cohorts: dict[int, dict[float, dict[str, float]]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6.5, 6.4), sharex=True)
    for i, (c, curve) in enumerate(cohorts.items()):
        steps = list(curve)
        n = int(curve[steps[0]]["tasks"])
        color = f"C{i}"
        ax.plot(
            steps,
            [v["width"] for v in curve.values()],
            "o-",
            color=color,
            label=f"runs with > {c} calls (n={n})",
        )
        ax2.plot(steps, [v["cov"] for v in curve.values()], "s-", color=color)
        ax2.plot(steps, [v["cov90"] for v in curve.values()], "^--", color=color)
    ax.set_ylabel("mean 10-90 interval width (s)")
    ax.set_title("Remaining time of fixed cohorts of held-out runs (5-fold, by instance)")
    ax.legend(fontsize="small")
    for target in (0.8, 0.9):
        ax2.axhline(target, color="grey", lw=0.8)
    ax2.plot([], [], "ks-", label="10-90 interval (nominal 0.8)")
    ax2.plot([], [], "k^--", label="below q0.9 (nominal 0.9)")
    ax2.set_ylim(0.5, 1.0)
    ax2.set_xlabel("calls completed (k)")
    ax2.set_ylabel("coverage")
    ax2.legend(loc="lower left", fontsize="small")
    return save_png(fig, path)


def plot(curve: dict[float, dict[str, float]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = list(curve)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6.5, 6.4), sharex=True)
    ax.plot(steps, [curve[k]["width"] for k in steps], "o-", label="recalibrated")
    ax.plot(
        steps, [curve[k]["raw_width"] for k in steps], "o:", color="grey", label="raw composition"
    )
    ax.set_ylabel("mean 10-90 interval width (s)")
    ax.set_title("Remaining time of held-out tasks still running (5-fold, by instance)")
    ax.legend()
    cov = [curve[k]["coverage"] for k in steps]
    ax2.plot(steps, cov, "s-", color="tab:orange", label="10-90 interval (target 0.8)")
    ax2.plot(
        steps,
        [1.0 - curve[k]["above"] for k in steps],
        "^-",
        color="tab:green",
        label="below q0.9 (target 0.9)",
    )
    ax2.plot(
        steps,
        [curve[k]["raw_coverage"] for k in steps],
        "s:",
        color="grey",
        label="10-90, raw composition",
    )
    for target in (0.8, 0.9):
        ax2.axhspan(target - COVERAGE_TOLERANCE, target + COVERAGE_TOLERANCE, alpha=0.08)
    ax2.set_ylim(0.6, 1.0)
    ax2.set_xlabel("calls completed (k)")
    ax2.set_ylabel("coverage")
    ax2.legend(loc="lower left", fontsize="small")
    return save_png(fig, path)
