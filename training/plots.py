"""Evaluation figures as PNG files (matplotlib, Agg renderer).

Each writer draws one figure on a fresh :class:`matplotlib.figure.Figure` rendered by
the Agg backend (no pyplot, no global state, safe in threads and without a display),
creates the parent directory if needed, and returns the path of the PNG it wrote.
matplotlib is imported inside the functions only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Pareto point: (cost per prediction in microseconds, loss, on the front, selected).
ParetoPoint = tuple[float, float, bool, bool]
_DPI = 110


def _figure(width: float = 6.0, height: float = 4.5) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def reliability_diagram(
    results: Mapping[str, tuple[Sequence[float] | npt.ArrayLike, Sequence[float] | npt.ArrayLike]],
    path: str | Path,
) -> Path:
    """Coverage against nominal level, one line per predictor, with the diagonal.

    A calibrated predictor lies on the diagonal; below it, its quantiles are too low
    (the observed value exceeds the level-``tau`` quantile more often than ``1 - tau``).

    Args:
        results: Predictor name to ``(levels, coverage)``, two sequences of equal length
            with values in [0, 1] (see :func:`training.metrics.coverage`).
        path: Where to write the PNG.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If a predictor's levels and coverage differ in length.
    """
    fig = _figure(5.0, 5.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="ideal")
    for name, (levels, cov) in results.items():
        lv, cv = np.asarray(levels, dtype=float), np.asarray(cov, dtype=float)
        if lv.shape != cv.shape:
            raise ValueError(f"{name}: {lv.size} levels but {cv.size} coverages")
        ax.plot(lv, cv, marker="o", markersize=4, label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="nominal level", ylabel="observed coverage")
    ax.set_aspect("equal")
    ax.set_title("Reliability of the quantiles")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    return _save(fig, path)


def pit_histogram(u: npt.ArrayLike, path: str | Path, bins: int = 20) -> Path:
    """Histogram of PIT values with the uniform density for reference.

    Calibrated forecasts give a flat histogram; a U shape means too-narrow forecasts, a
    hump too-wide ones, a slope a biased median.

    Args:
        u: PIT values in [0, 1] (see :func:`training.metrics.pit`).
        path: Where to write the PNG.
        bins: Number of equal-width bins on [0, 1].

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    values = np.asarray(u, dtype=float).ravel()
    fig = _figure()
    ax = fig.add_subplot()
    ax.hist(values, bins=bins, range=(0.0, 1.0), density=True, color="tab:blue", alpha=0.75)
    ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1, label="uniform")
    ax.set(xlim=(0, 1), xlabel="PIT value F(y)", ylabel="density")
    ax.set_title(f"PIT histogram (n = {values.size})")
    ax.legend(loc="upper right", fontsize="small")
    return _save(fig, path)


def pareto_front(points: Sequence[ParetoPoint], path: str | Path) -> Path:
    """Loss against prediction cost (log x axis), the Pareto front joined by a line.

    Args:
        points: ``(cost_us, loss, is_pareto, is_selected)`` per candidate: cost per
            prediction in microseconds (> 0), loss (e.g. mean pinball, seconds), whether
            it is on the Pareto front, whether it is the chosen one.
        path: Where to write the PNG.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If a cost is not strictly positive (log axis).
    """
    cost = np.array([p[0] for p in points], dtype=float)
    loss = np.array([p[1] for p in points], dtype=float)
    front = np.array([p[2] for p in points], dtype=bool)
    chosen = np.array([p[3] for p in points], dtype=bool)
    if np.any(cost <= 0):
        raise ValueError("costs must be > 0 for the log axis")
    fig = _figure()
    ax = fig.add_subplot()
    ax.scatter(cost[~front], loss[~front], s=18, color="0.65", label="candidate")
    if front.any():
        order = np.argsort(cost[front])
        ax.plot(
            cost[front][order],
            loss[front][order],
            marker="o",
            markersize=5,
            color="tab:blue",
            label="Pareto front",
        )
    if chosen.any():
        ax.scatter(
            cost[chosen],
            loss[chosen],
            s=160,
            marker="*",
            color="tab:red",
            zorder=3,
            label="selected",
        )
    ax.set_xscale("log")
    ax.set(xlabel="cost per prediction (µs)", ylabel="loss")
    ax.set_title("Accuracy against cost")
    ax.grid(alpha=0.3, which="both")
    if points:
        ax.legend(loc="upper right", fontsize="small")
    return _save(fig, path)


def comparison_bar(table: Mapping[str, float], path: str | Path) -> Path:
    """Horizontal bars of mean pinball loss per predictor, best on top, values printed.

    Args:
        table: Predictor name to mean pinball loss (target units, e.g. seconds).
        path: Where to write the PNG.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    items = sorted(table.items(), key=lambda kv: kv[1])
    names = [k for k, _ in items]
    values = [float(v) for _, v in items]
    fig = _figure(6.0, 1.2 + 0.45 * max(len(items), 1))
    ax = fig.add_subplot()
    bars = ax.barh(names, values, color="tab:blue", alpha=0.8)
    ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], padding=3, fontsize="small")
    ax.invert_yaxis()
    ax.set(xlabel="mean pinball loss")
    ax.set_title("Predictor comparison (lower is better)")
    ax.margins(x=0.15)
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)
