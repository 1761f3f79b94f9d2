"""``tailcast evaluate-workflows`` and ``tailcast train-workflows``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from core import Settings, TailcastError
from pipelines.cli._common import JsonOption, console, fail, print_json, progress_bar
from pipelines.cli._train import _quiet_training_stack

DataDir = Annotated[Path, typer.Option(exists=True, file_okay=False, dir_okay=True)]
Trials = Annotated[int, typer.Option(min=1, help="Optuna trials of the latency predictor.")]
Timeout = Annotated[float, typer.Option(help="Seconds after which no new trial starts.")]
Seed = Annotated[int, typer.Option(help="Seed of the fits and the Monte Carlo draws.")]


def _progress(as_json: bool) -> Progress:
    return progress_bar(hidden=as_json)


def _reporter(bar: Progress) -> Any:
    tasks: dict[str, Any] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return report


def evaluate_workflows(
    train: Annotated[
        Path, typer.Option("--train", exists=True, file_okay=False, help="DIR to fit on.")
    ],
    test: Annotated[
        Path, typer.Option("--test", exists=True, file_okay=False, help="DIR to score.")
    ],
    trials: Trials = 4,
    timeout: Timeout = 300.0,
    samples: Annotated[int, typer.Option(min=100, help="Monte Carlo samples per forecast.")] = 2000,
    seed: Seed = 0,
    as_json: JsonOption = False,
) -> None:
    """Fit workflow forecasts on --train and score them on the held-out tasks of --test.

    Each DIR holds minisweagent_calls.csv.gz and minisweagent_tasks.csv.gz. Reports the
    task wall-time composition (distributional vs sum of means vs sum of P90s), the
    call-count law vs the empirical one, tool times and remaining-time sharpness.
    """
    _quiet_training_stack()
    from pipelines.workflows import evaluate_workflow_dirs

    started = time.perf_counter()
    with _progress(as_json) as bar:
        try:
            result = evaluate_workflow_dirs(
                train,
                test,
                trials=trials,
                timeout_s=timeout,
                seed=seed,
                samples=samples,
                progress=_reporter(bar),
            )
        except (TailcastError, ValueError, RuntimeError) as exc:
            fail(str(exc))
    result["seconds"] = round(time.perf_counter() - started, 1)
    if as_json:
        print_json(result)
        return
    _tables(result)


def _tables(result: dict[str, Any]) -> None:
    table = Table(title=f"task wall time, {result['tasks']} held-out task runs")
    for col in ("composition", "mean pinball (s)", "cov 0.5", "cov 0.9"):
        table.add_column(col, justify="left" if col == "composition" else "right")
    for name, s in result["composition"].items():
        cov = s["coverage"]
        table.add_row(name, f"{s['mean_pinball']:.1f}", f"{cov['0.5']:.3f}", f"{cov['0.9']:.3f}")
    console.print(table)
    counts = Table(title="call count")
    for col in ("model", "mean pinball (calls)", "cov 0.9"):
        counts.add_column(col, justify="left" if col == "model" else "right")
    for name, s in result["call_count"].items():
        counts.add_row(name, f"{s['mean_pinball']:.2f}", f"{s['coverage']['0.9']:.3f}")
    console.print(counts)
    curve = result["remaining"]
    remaining = Table(title="remaining time after k calls")
    cols = ("k", "tasks", "10-90 width (s)", "10-90 coverage", "above q0.9", "raw coverage")
    for col in cols:
        remaining.add_column(col, justify="right")
    for k, n, w, c, a, r in zip(
        curve["steps_done"],
        curve["tasks"],
        curve["width_10_90_s"],
        curve["coverage_10_90"],
        curve["above_90"],
        curve["raw_coverage_10_90"],
        strict=True,
    ):
        remaining.add_row(f"{k:.0f}", f"{n:.0f}", f"{w:.0f}", f"{c:.3f}", f"{a:.3f}", f"{r:.3f}")
    console.print(remaining)
    _cohort_table(result.get("cohorts", {}))


def _cohort_table(cohorts: dict[str, dict[str, list[float]]]) -> None:
    """Fixed cohorts: the same runs (more than c calls) scored at every depth 0..c."""
    if not cohorts:
        return
    table = Table(title="remaining time of fixed cohorts (same runs at every k)")
    for col in ("cohort", "k", "runs", "10-90 width (s)", "10-90 coverage", "below q0.9"):
        table.add_column(col, justify="right")
    for c, cur in cohorts.items():
        for k, n, w, inside, below in zip(
            cur["steps_done"],
            cur["tasks"],
            cur["width_10_90_s"],
            cur["inside_10_90"],
            cur["below_q90"],
            strict=True,
        ):
            table.add_row(
                f"> {c} calls",
                f"{k:.0f}",
                f"{n:.0f}",
                f"{w:.0f}",
                f"{inside / n:.3f}",
                f"{below / n:.3f}",
            )
    console.print(table)


def train_workflows(
    data: Annotated[
        Path, typer.Option("--data", exists=True, file_okay=False, help="DIR to fit on.")
    ],
    trials: Trials = 4,
    timeout: Timeout = 300.0,
    seed: Seed = 0,
    as_json: JsonOption = False,
) -> None:
    """Fit workflow forecasts on DIR and publish the next bundle under <home>/workflows.

    The service loads the newest bundle when it starts (POST /v1/forecasts/workflow).
    """
    _quiet_training_stack()
    from pipelines.workflows import publish_workflows

    settings = Settings()
    with _progress(as_json) as bar:
        try:
            version, path = publish_workflows(
                settings, data, trials=trials, timeout_s=timeout, seed=seed, progress=_reporter(bar)
            )
        except (TailcastError, ValueError, RuntimeError) as exc:
            fail(str(exc))
    if as_json:
        print_json({"version": version, "path": str(path)})
        return
    console.print(f"workflow bundle v{version} written to {path}")
