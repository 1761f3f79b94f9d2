"""``tailcast train`` and ``tailcast evaluate``."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import TextColumn
from rich.table import Table

from core import Settings, TailcastError
from pipelines._quiet import quiet_training_stack
from pipelines.cli._common import JsonOption, console, fail, print_json, progress_bar

ServedModel = Annotated[str, typer.Option("--served-model", help="Served model to predict for.")]


def _quiet_training_stack() -> None:
    """:func:`pipelines._quiet.quiet_training_stack`, and every UserWarning off (CLI output)."""
    quiet_training_stack()
    warnings.filterwarnings("ignore", category=UserWarning)


def train(
    served_model: ServedModel,
    target: Annotated[str, typer.Option(help="Record field to predict.")] = "latency_s",
    trials: Annotated[int, typer.Option(min=1, help="Optuna trials in this process.")] = 16,
    timeout: Annotated[
        float, typer.Option(help="Seconds after which no new trial starts.")
    ] = 540.0,
    seed: Annotated[int, typer.Option(help="Seed of the search and fits.")] = 0,
    cross_fit: Annotated[
        int,
        typer.Option(
            min=0,
            help="Members of the registered predictor, each refitted with one fold held "
            "out for calibration (0 or 1: the selected trial's own fit, 5x faster).",
        ),
    ] = 5,
    as_json: JsonOption = False,
) -> None:
    """Search, calibrate, evaluate and register a predictor for one served model.

    The new version is aliased ``challenger``; it becomes ``champion`` only when it
    beats the current champion on the same held-out tasks.
    """
    _quiet_training_stack()
    from feature_store import open_store
    from pipelines.train import train_served_model

    settings = Settings()
    started = time.perf_counter()
    with progress_bar(hidden=as_json, extra=(TextColumn("{task.fields[info]}"),)) as bar:
        task = bar.add_task(f"search {served_model}", total=trials, info="")
        text_task = bar.add_task("text features", total=None, info="", visible=False)

        def on_trial(outcome: Any) -> None:
            info = (
                "pruned"
                if outcome is None
                else (
                    f"last: {outcome.config.text.kind} {list(outcome.config.hidden)} "
                    f"loss {outcome.val_loss:.4f} {outcome.cost_us:.0f} µs"
                )
            )
            bar.update(task, advance=1, info=info)

        def on_text(stage: str, done: int, total: int) -> None:
            bar.update(text_task, visible=True, description=stage, completed=done, total=total)

        try:
            with open_store(settings) as store:
                report = train_served_model(
                    settings,
                    store,
                    served_model,
                    target=target,
                    trials=trials,
                    timeout_s=timeout,
                    seed=seed,
                    cross_fit=cross_fit,
                    on_trial=on_trial,
                    on_text=on_text,
                )
        except (TailcastError, ValueError, RuntimeError) as exc:
            fail(str(exc))
    elapsed = time.perf_counter() - started
    if as_json:
        print_json({**report.as_json(), "seconds": round(elapsed, 1)})
        return
    comparison_table(report.comparison)
    m = report.metrics
    state = "promoted to champion" if report.promoted else "kept as challenger"
    console.print(
        f"registered tailcast-{served_model} v{report.version} ({state}); selected "
        f"{report.selected['text']} {report.selected['hidden']}, {m['prediction_us']:.0f} µs "
        f"per request, {m['batched_rps']:,.0f} requests/s batched; {elapsed:.0f} s"
    )


def comparison_table(models: dict[str, dict[str, Any]]) -> None:
    """Print mean pinball, CRPS and coverage per model."""
    first = next(iter(models.values()))
    levels = list(first["coverage"])
    table = Table(title="held-out tasks")
    for col in ["model", "mean pinball", "CRPS", *[f"cov {lv}" for lv in levels]]:
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, s in models.items():
        table.add_row(
            name,
            f"{s['mean_pinball']:.4f}",
            f"{s['crps']:.4f}",
            *[f"{s['coverage'][lv]:.3f}" for lv in levels],
        )
    console.print(table)


def evaluate(
    served_model: ServedModel,
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            exists=True,
            dir_okay=False,
            help="Records to score (need not be in the store).",
        ),
    ],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="Format of --data, or 'auto'.")
    ] = "auto",
    as_json: JsonOption = False,
) -> None:
    """Score the champion and the three baselines on the records in ``--data``.

    The baselines are fitted on the training fold of the frame the champion was
    trained on (same served model, same knowledge cut-off).
    """
    _quiet_training_stack()
    from pipelines.evaluate import evaluate_champion

    try:
        result = evaluate_champion(Settings(), served_model, data, fmt)
    except (TailcastError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        print_json(result)
        return
    comparison_table(result["models"])
    console.print(f"champion v{result['version']}, {result['rows']:,} records scored")
