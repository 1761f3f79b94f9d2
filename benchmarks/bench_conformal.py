"""Adaptive conformal calibration on real data: coverage between retrainings.

Each case runs :func:`pipelines.replay.replay` (what ``tailcast drift replay`` runs)
with retraining off and online adaptive conformal calibration on
(:class:`drift.AdaptiveCalibrator`, default :class:`drift.ConformalConfig`): the replay
keeps both the model's own forecasts (``model_hits``: without calibration) and the
served, adjusted ones (``hits``: with), so the two variants are compared on the same
forecasts of the same model. One case is also run with ``adaptive_calibration=False``
(the option that turns it off) as a cross-check of the "without" column.

Splits of ``agentic/minisweagent_calls.csv.gz`` (served model ``deepseek-chat``):

* **2026-04-11 06:00** (the bar): train before it, replay every later call (the API
  is about 25% slower per output token from 07:00 on);
* **2026-04-13 00:00**: train on everything before (the slower runs included), replay
  the two later runs;
* **held-out tasks** of the training period (a third of the SWE-bench tasks before
  06:00, by a hash of the instance id, as in ``python -m benchmarks drift``): train on
  the other tasks, replay these (a stationary stream: calibration must not hurt).

Bar: with adaptive calibration, coverage of the 0.9 quantile in every window of 500
completions after the first 500 is within 4 points of 0.9 (first split, both feature
sets; the other splits are checks). Plot: ``benchmarks/plots/conformal_coverage.png``.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._report import ROOT, save_png
from benchmarks.bench_drift import CALLS, SERVED, TEXT_KINDS, TRAIN_BEFORE, _split_files
from drift import ConformalConfig
from pipelines.replay import ReplayRequest, coverage_windows, replay

SECOND_CUT = datetime(2026, 4, 13, tzinfo=UTC)
TRIALS = 2
WINDOW, SKIP, TOLERANCE, LEVEL = 500, 500, 0.04, "0.9"
PLOT = ROOT / "benchmarks" / "plots" / "conformal_coverage.png"


def _case(tmp: Path, tag: str, **kwargs: Any) -> dict[str, Any]:
    home = tmp / tag
    home.mkdir()
    request = ReplayRequest(
        served_model=SERVED,
        fmt="minisweagent",
        trials=TRIALS,
        retrain=False,
        retrain_config={"text_kinds": TEXT_KINDS},
        **kwargs,
    )
    started = time.perf_counter()
    result = replay(request, home, stage=lambda s: print(f"  [{tag}] {s}", flush=True))
    assert result.hits is not None
    assert result.model_hits is not None
    stream = result.stream
    return {
        "replayed": result.replayed,
        "with": coverage_windows(result.hits, WINDOW, SKIP),
        "without": coverage_windows(result.model_hits, WINDOW, SKIP),
        "pinball_with": float(np.mean(stream.served_pinball)),
        "pinball_without": float(np.mean(stream.pinball)),
        "alarms": len(result.alarms),
        "wall_s": time.perf_counter() - started,
    }


def _within(windows: list[float]) -> bool:
    return bool(windows) and all(abs(w - 0.9) <= TOLERANCE for w in windows)


def _span(windows: list[float]) -> str:
    return f"{min(windows):.3f}-{max(windows):.3f}" if windows else "-"


def _row(name: str, d: dict[str, Any]) -> str:
    w, wo = d["with"][LEVEL], d["without"][LEVEL]
    return (
        f"| {name} | {d['replayed']:,} | {len(w)} | {_span(wo)} | "
        f"{'yes' if _within(wo) else 'no'} | **{_span(w)}** | {'yes' if _within(w) else 'no'} | "
        f"{d['pinball_without']:.3f} -> {d['pinball_with']:.3f} | {d['alarms']} | "
        f"{d['wall_s']:.0f} s |"
    )


def _levels(name: str, d: dict[str, Any]) -> str:
    def spans(cov: dict[str, list[float]]) -> str:
        return ", ".join(f"{lv}: {_span(v)}" for lv, v in cov.items())

    return f"- {name}: without {spans(d['without'])}; with {spans(d['with'])}"


def _plot(cases: dict[str, dict[str, Any]]) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.2))
    for i, (name, d) in enumerate(cases.items()):
        color = f"C{i}"
        x = SKIP + WINDOW * (np.arange(len(d["with"][LEVEL])) + 1)
        ax.plot(x, d["without"][LEVEL], color=color, ls=":", marker="x", lw=1, label=None)
        ax.plot(x, d["with"][LEVEL], color=color, marker="o", lw=1.4, label=name)
    ax.axhspan(0.9 - TOLERANCE, 0.9 + TOLERANCE, color="grey", alpha=0.15)
    ax.axhline(0.9, color="grey", ls="--", lw=0.8)
    ax.set_xlabel(f"completions replayed (end of each window of {WINDOW})")
    ax.set_ylabel("coverage of the 0.9 quantile")
    ax.set_title("with adaptive calibration (solid) and without (dotted)")
    ax.legend(fontsize=7, loc="lower right")
    return save_png(fig, PLOT)


def run() -> str:
    """Every case; the Markdown section of BENCHMARKS.md."""
    cases: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-conformal-") as tmp_name:
        tmp = Path(tmp_name)
        train, held, _ = _split_files(tmp)
        splits: dict[str, dict[str, Any]] = {
            f"after {TRAIN_BEFORE:%m-%d %H:%M}": {"data": CALLS, "train_before": TRAIN_BEFORE},
            f"after {SECOND_CUT:%m-%d %H:%M}": {"data": CALLS, "train_before": SECOND_CUT},
            "held-out tasks": {"data": held, "train_data": train, "train_before": TRAIN_BEFORE},
        }
        for split, spec in splits.items():
            for features in ("static", "all"):
                tag = f"{split}-{features}".replace(" ", "-").replace(":", "")
                cases[f"{split}, {features}"] = _case(tmp, tag, features=features, **spec)
        off = _case(
            tmp, "off", features="static", adaptive_calibration=False, **splits[next(iter(splits))]
        )
    first = [d for name, d in cases.items() if name.startswith(next(iter(splits)))]
    bar = all(_within(d["with"][LEVEL]) for d in first)
    main = cases[f"{next(iter(splits))}, static"]
    same = off["with"][LEVEL]  # with calibration off, the served forecasts are the model's
    head = (
        "| case (split, features) | replayed | windows | cov 0.9 without (min-max) | "
        "within 4 pts | cov 0.9 with (min-max) | within 4 pts | mean pinball s "
        "(without -> with) | alarms | wall |\n|---|---:|---:|---:|---|---:|---|---:|---:|---:|"
    )
    rows = "\n".join(_row(name, d) for name, d in cases.items())
    levels = "\n".join(_levels(name, d) for name, d in cases.items())
    per_window = "\n".join(
        f"- {name}: without {[round(x, 3) for x in d['without'][LEVEL]]}, "
        f"with {[round(x, 3) for x in d['with'][LEVEL]]}"
        for name, d in cases.items()
    )
    return (
        f"Data: `agentic/minisweagent_calls.csv.gz`, served model `{SERVED}`; champion "
        f"trained before the cut (initial search {TRIALS} trials over text "
        f"{list(TEXT_KINDS)}), retraining off; calibrator `{ConformalConfig()!r}`; "
        f"coverage per window of {WINDOW} completions after the first {SKIP} (windows "
        "end-aligned, a last partial window left out). Without = the model's own "
        "forecasts, with = the served forecasts adjusted online (offsets as of each "
        "request's submission), from the same replay.\n\n"
        f"{head}\n{rows}\n\n"
        f"Coverage of the 0.9 quantile per window:\n{per_window}\n\n"
        f"Every level, min-max over the windows:\n{levels}\n\n"
        f"- bar: every window of the first split within 4 points of 0.9 with adaptive "
        f"calibration, both feature sets: **{'met' if bar else 'NOT met'}**\n"
        f"- cross-check, `adaptive_calibration=False` (static, first split): "
        f"{_span(same)} (the same model's own forecasts above: "
        f"{_span(main['without'][LEVEL])}; the champion is retrained, so it can differ "
        f"slightly)\n\n![coverage per window]"
        f"(benchmarks/plots/{_plot(cases).name})\n"
    )
