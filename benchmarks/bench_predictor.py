"""Predictor quality, cost and training time on real data (issue bars in the output).

* Agentic calls (``minisweagent_calls.csv.gz``, served model ``deepseek-chat``): a
  default ``tailcast train`` (the same function the CLI runs) in a fresh home; the
  held-out fold is split by SWE-bench task, so no task is in both train and test.
  Reported: mean pinball and coverage at 0.1/0.5/0.9/0.95/0.99 for tailcast and the
  three baselines fitted on the same training fold, µs per single request, batched
  requests/s, wall time.
* AlpacaEval output lengths (target: output tokens = words x 4/3 per model, split by
  instruction): the search's selected predictor against the same configuration
  refitted without text features.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core import Settings
from core.predictor import REQUEST_FEATURES, TextSpec
from feature_store import DuckDBStore
from feature_store.importers import get_importer
from pipelines.train import text_provider, train_served_model
from training import (
    EVAL_LEVELS,
    SearchSpace,
    TextProvider,
    TrainConfig,
    TrainOutcome,
    TrainRequest,
    calibrate,
    evaluate_models,
    fit_network,
    provide_text,
    train_predictor,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _row(name: str, s: dict[str, Any]) -> str:
    cov = " | ".join(f"{s['coverage'][f'{lv:g}']:.3f}" for lv in EVAL_LEVELS)
    return f"| {name} | {s['mean_pinball']:.4f} | {s['crps']:.3f} | {cov} |"


def _table(models: dict[str, dict[str, Any]]) -> str:
    head = "| model | mean pinball | CRPS | " + " | ".join(f"cov {lv:g}" for lv in EVAL_LEVELS)
    sep = "|---|---:|---:|" + "---:|" * len(EVAL_LEVELS)
    return "\n".join([head + " |", sep, *(_row(n, s) for n, s in models.items())])


def agentic() -> str:
    """Default training on the agentic calls."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp))
        with DuckDBStore(settings.resolved_store_path) as store:
            store.ingest_batches(
                get_importer("minisweagent").read(SHARED / "agentic" / "minisweagent_calls.csv.gz")
            )
            started = time.perf_counter()
            report = train_served_model(settings, store, "deepseek-chat")
            wall = time.perf_counter() - started
    m = report.comparison
    ours = m["tailcast"]["mean_pinball"]
    emp = m["empirical"]["mean_pinball"]
    best_other = min(m["swarmpilot_mlp"]["mean_pinball"], m["gbdt"]["mean_pinball"])
    worst_cov = max(abs(m["tailcast"]["coverage"][f"{lv:g}"] - lv) for lv in EVAL_LEVELS)
    met = report.metrics
    return (
        f"Held-out tasks: {int(met['rows_test']):,} calls; "
        f"training fold {int(met['rows_train']):,}. "
        f"Selected: {report.selected['text']} text, hidden {report.selected['hidden']} "
        f"({report.trials} finished trials).\n\n{_table(m)}\n\n"
        f"- mean pinball vs empirical: **{100 * (1 - ours / emp):.1f}% lower** (bar >= 20%)\n"
        f"- vs the better of SwarmPilot MLP and GBDT: **{100 * (1 - ours / best_other):.1f}% "
        "lower** (bar >= 10%)\n"
        f"- worst coverage error: **{100 * worst_cov:.1f} points** (bar <= 3)\n"
        f"- prediction cost: **{met['prediction_us']:.0f} µs** per single request, text "
        f"included (bar <= 1,000); batched in-process: **{met['batched_rps']:,.0f} requests/s** "
        "(bar >= 20,000)\n"
        f"- default `tailcast train` wall time: **{wall:.0f} s** (bar <= 900 s)\n"
    )


def alpacaeval(trials: int = 8) -> str:
    """Selected predictor vs the same predictor without text, AlpacaEval lengths.

    One predictor pools every model (served model as a feature). The search may pick
    no text, the static table or the 3-layer encoder, each through the ridge
    prompt-effect head, with the validation loss in output tokens (the bar's units);
    there is no prediction-cost budget (the 1 ms bar is on the agentic data).
    Calibration is split-conformal per served model. The comparison predictor is
    the selected configuration with text kind ``none``, trained and calibrated the
    same way on the same split.
    """
    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "s.duckdb") as store:
        store.ingest_batches(
            get_importer("alpacaeval").read(
                SHARED / "prompt_length" / "alpacaeval_output_lengths.csv.gz"
            )
        )
        frame = store.training_frame(require=("output_tokens",))
        request = _alpaca_request(trials)
        provider = text_provider(store, Settings().home / "cache" / "static_tables", None)
        started = time.perf_counter()
        outcome = train_predictor(frame, request, provider, Path(tmp) / "plots", on_trial=_log)
        wall = time.perf_counter() - started
        chosen = outcome.search.selected
        assert chosen is not None
        plain = _without_text(outcome, chosen.config, provider, request)
    models = {
        f"tailcast (selected: {_describe(chosen.config)})": outcome.comparison["tailcast"],
        "same predictor, no text": plain,
        "empirical per model": outcome.comparison["empirical"],
    }
    return _alpaca_report(outcome, models, plain, (trials, request.timeout_s, wall))


def _alpaca_request(trials: int) -> TrainRequest:
    """The AlpacaEval search: output tokens, ridge text heads, no prediction-cost budget."""
    base = TrainConfig(
        target="output_tokens",
        target_transform="log1p",
        numeric=(*REQUEST_FEATURES, "log_prompt_chars"),
        batch_size=2048,
        max_epochs=25,
        patience=4,
        objective="target",
    )
    space = SearchSpace(
        text_variants=(
            TextSpec(kind="none"),
            TextSpec(kind="static_table"),
            TextSpec(kind="encoder", encoder_layers=3),
        ),
        text_heads=("ridge",),
        widths=(64, 128),
        depth=(1, 2),
        dropout=(0.0, 0.2),
        lr=(1e-3, 5e-3),
        loss_spaces=ALPACA_LOSS_SPACES,
        seed_text_variants=True,
    )
    return TrainRequest(
        served_model="alpacaeval",
        target="output_tokens",
        trials=trials,
        timeout_s=1800,
        base=base,
        space=space,
        prompt_classes=0,
        calibration_by="served_model",
        min_group=50,
        max_cost_us=None,
        baselines=("empirical",),  # SwarmPilot's log target cannot take 0-token outputs
        cross_fit=0,  # the selected trial itself, as _without_text refits its twin
    )


def _without_text(
    outcome: TrainOutcome, config: TrainConfig, provider: TextProvider, request: TrainRequest
) -> dict[str, Any]:
    """Test scores of ``config`` with text kind ``none``, fitted and calibrated the same way."""
    data, split = outcome.data, outcome.split
    plain_config = config.model_copy(update={"text": TextSpec(kind="none")})
    data.text, _, _ = provide_text(provider, plain_config.text, data)
    plain, _ = fit_network(data, split.train, split.val, plain_config)
    plain = calibrate(
        plain,
        data,
        np.concatenate([split.val, split.cal]),
        prompt_classes=request.prompt_classes,
        min_group=request.min_group,
        by=request.calibration_by,
    )
    scores, _ = evaluate_models(plain, data, split.train, split.test, baselines=())
    result: dict[str, Any] = scores["tailcast"]
    return result


def _alpaca_report(
    outcome: TrainOutcome,
    models: dict[str, dict[str, Any]],
    plain: dict[str, Any],
    run: tuple[int, float | None, float],
) -> str:
    """Markdown: the setup, the table and the bar lines; ``run`` is (trials, timeout s, wall s)."""
    trials, timeout_s, wall = run
    data, split = outcome.data, outcome.split
    ours = outcome.comparison["tailcast"]["mean_pinball"]
    gain = 100 * (1 - ours / plain["mean_pinball"])
    worst = {
        name: max(abs(s["coverage"][f"{lv:g}"] - lv) for lv in EVAL_LEVELS)
        for name, s in models.items()
    }
    trials_text = "; ".join(
        f"{_describe(t.config)}: {t.val_loss:.4f}" for t in outcome.search.trials
    )
    return (
        f"{data.n:,} (instruction, model) rows, {len(set(data.cols['served_model'])):,} models; "
        f"held-out instructions: {len(split.test):,} rows. Target: output tokens "
        f"(= words x 4/3). Search: {len(outcome.search.trials)} of {trials} trials finished "
        f"(timeout {timeout_s:.0f} s), {wall:.0f} s, validation loss in "
        f"tokens / training median. Calibration: split-conformal per served model.\n\n"
        f"{_table(models)}\n\n"
        f"- text features: **{gain:.1f}% lower** mean pinball than the same predictor "
        "without text (bar >= 10%)\n"
        + "".join(
            f"- worst coverage error, {name}: **{100 * w:.1f} points** (bar <= 3)\n"
            for name, w in worst.items()
        )
        + f"- trials (validation loss): {trials_text}\n"
    )


#: Loss spaces the AlpacaEval search may train in.
ALPACA_LOSS_SPACES: tuple[str, ...] = ("transformed", "target")


def _describe(config: TrainConfig) -> str:
    text: str = config.text.kind
    if config.text.kind == "encoder":
        text = f"encoder L{config.text.encoder_layers}"
    head = f" {config.text_head} head" if config.text.kind != "none" else ""
    return f"{text}{head}, hidden {list(config.hidden)}, {config.loss_space} loss"


def _log(outcome: Any) -> None:
    if outcome is not None:
        print(
            f"  trial {outcome.number}: {outcome.config.text.kind} {outcome.config.hidden} "
            f"val {outcome.val_loss:.4f} {outcome.cost_us:.0f} us",
            flush=True,
        )


def run() -> str:
    """The agentic part (``python -m benchmarks alpacaeval`` runs the other)."""
    return f"### Agentic calls (deepseek-chat)\n\n{agentic()}"
