"""AlpacaEval output lengths over 5 folds by instruction: does the text gain hold off one split?

One predictor pools every model (output tokens = words x 4/3), in the configuration
the ``alpacaeval`` search selected (:data:`SPACE`: the 3-layer encoder through the
ridge prompt-effect head; split-conformal per served model); it is trained once per
fold, fold k holding out the k-th fifth of the instructions (``TrainRequest.test_fold``;
an instruction's rows for every model stay in one fold), and compared with the same
configuration refitted and calibrated without text features on the same rows. Bars:
mean gain over folds >= 10%, no fold below 6%, every coverage level within 3 points in
every fold. Plot: ``benchmarks/plots/alpaca_folds.png``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._report import ROOT
from benchmarks.bench_folds import bar_chart, bar_line, closing, each_fold
from benchmarks.bench_predictor import SHARED, _alpaca_request, _describe, _without_text
from core import Settings
from core.predictor import TextSpec
from feature_store import DuckDBStore
from feature_store.importers import get_importer
from pipelines.train import text_provider
from training import EVAL_LEVELS, SearchSpace, train_predictor

FOLDS = 5
#: The configuration every fold trains: what the search of ``alpacaeval`` selected on
#: its validation fold (encoder L3 through the ridge head, hidden [128, 128], loss on
#: the transformed target); a search per fold would take 5x longer on 2 cores.
SPACE = SearchSpace(
    text_variants=(TextSpec(kind="encoder", encoder_layers=3),),
    text_heads=("ridge",),
    widths=(128,),
    depth=(2, 2),
    dropout=(0.1, 0.1),
    lr=(3e-3, 3e-3),
    loss_spaces=("transformed",),
)
PLOT = ROOT / "benchmarks" / "plots" / "alpaca_folds.png"
BAR_MEAN, BAR_FOLD = 10.0, 6.0


def _worst(score: dict[str, Any]) -> float:
    """Worst coverage error over the evaluation levels, in points."""
    return float(100 * max(abs(score["coverage"][f"{lv:g}"] - lv) for lv in EVAL_LEVELS))


def _fold(frame: Any, provider: Any, k: int, out: Path) -> dict[str, Any]:
    """Train the AlpacaEval configuration with fold ``k`` held out; its scores."""
    request = _alpaca_request(1).model_copy(update={"test_fold": k, "space": SPACE})
    started = time.perf_counter()
    outcome = train_predictor(frame, request, provider, out / f"fold{k}")
    chosen = outcome.search.selected
    assert chosen is not None
    plain = _without_text(outcome, chosen.config, provider, request)
    ours = outcome.comparison["tailcast"]
    return {
        "fold": k,
        "test_rows": len(outcome.split.test),
        "ours": ours["mean_pinball"],
        "plain": plain["mean_pinball"],
        "empirical": outcome.comparison["empirical"]["mean_pinball"],
        "gain": 100 * (1 - ours["mean_pinball"] / plain["mean_pinball"]),
        "coverage_error": _worst(ours),
        "plain_coverage_error": _worst(plain),
        "selected": _describe(chosen.config),
        "wall_s": time.perf_counter() - started,
    }


def folds() -> list[dict[str, Any]]:
    """Every fold's scores."""
    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "s.duckdb") as store:
        store.ingest_batches(
            get_importer("alpacaeval").read(
                SHARED / "prompt_length" / "alpacaeval_output_lengths.csv.gz"
            )
        )
        frame = store.training_frame(require=("output_tokens",))
        provider = text_provider(store, Settings().home / "cache" / "static_tables", None)
        return each_fold(lambda k: _fold(frame, provider, k, Path(tmp) / "runs"), FOLDS)


def plot(rows: list[dict[str, Any]]) -> Path:
    """Text gain per fold against the bars."""
    return bar_chart(
        PLOT,
        (
            "AlpacaEval: gain of text features per fold",
            "held-out fold (instructions)",
            "mean pinball, % lower than no text",
        ),
        [([float(r["fold"]) for r in rows], [r["gain"] for r in rows], 0.6, "gain")],
        [
            (BAR_MEAN, "tab:blue", "--", "mean bar"),
            (BAR_FOLD, "tab:red", ":", "per-fold bar"),
        ],
    )


def report(rows: list[dict[str, Any]]) -> str:
    """The Markdown body: one row per fold and the bar lines."""
    lines = [
        f"AlpacaEval output lengths (target: output tokens = words x 4/3), one predictor "
        "pooling every model; the configuration the *alpacaeval* search selected "
        "(encoder L3 through the ridge head, hidden [128, 128], transformed loss, dropout "
        "0.1, lr 3e-3; split-conformal per served model on validation + calibration) "
        f"trained {FOLDS} times, fold k holding out the k-th fifth of the "
        "instructions; *no text*: the selected configuration refitted and calibrated "
        "without text features on the same rows. Pinball in tokens.",
        "",
        "| fold | held-out rows | tailcast | no text | empirical | gain | worst coverage "
        "error | no text: coverage error | selected | wall s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['fold']} | {r['test_rows']:,} | {r['ours']:.3f} | {r['plain']:.3f} | "
            f"{r['empirical']:.3f} | {r['gain']:.1f}% | {r['coverage_error']:.1f} pts | "
            f"{r['plain_coverage_error']:.1f} pts | {r['selected']} | {r['wall_s']:.0f}"
            f"{' (paused)' if r.get('paused') else ''} |"
        )
    mean = sum(r["gain"] for r in rows) / len(rows)
    low = min(r["gain"] for r in rows)
    lines += [
        "",
        bar_line("mean gain over folds", f"{mean:.1f}%", f">= {BAR_MEAN:.0f}%", mean >= BAR_MEAN),
        bar_line("worst fold", f"{low:.1f}%", f">= {BAR_FOLD:.0f}%", low >= BAR_FOLD),
        *closing(rows, "alpaca_folds"),
    ]
    return "\n".join(lines)


def run() -> str:
    """Run the benchmark; return the Markdown body for BENCHMARKS.md."""
    return report(folds_and_plot())


def folds_and_plot() -> list[dict[str, Any]]:
    """Every fold's scores, plotted."""
    rows = folds()
    plot(rows)
    return rows
