"""The simulation's latency-over-time figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scheduler_hooks.sim import SimResult


def latency_plot(results: dict[str, SimResult], path: Path, window_s: float | None = None) -> Path:
    """Rolling P95 latency over arrival time, one line per policy; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, result in results.items():
        span = float(np.nanmax(result.arrival) - np.nanmin(result.arrival)) or 1.0
        mids, p95 = result.rolling(0.95, window_s or span / 40)
        ax.plot(mids / 60.0, p95, label=name, linewidth=1.2)
    ax.set_xlabel("arrival time (min)")
    ax.set_ylabel("P95 latency (s), rolling window")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
