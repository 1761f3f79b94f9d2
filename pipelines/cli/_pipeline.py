"""``tailcast pipeline …``: the retraining job, once or on a cron schedule."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from core import Settings, TailcastError
from pipelines.cli._common import JsonOption, console, fail, print_json

if TYPE_CHECKING:
    from pipelines.retrain import RetrainConfig, RetrainOutcome
    from pipelines.schedule import JobRun

app = typer.Typer(
    rich_markup_mode=None,
    help="Retraining: one job now, or an in-process cron scheduler (one machine).",
    no_args_is_help=True,
)

PolicyOption = Annotated[
    str | None,
    typer.Option(
        "--policy",
        help="auto_if_better | manual | always (default: $TAILCAST_RETRAIN_POLICY, "
        "else auto_if_better).",
    ),
]
TrialsOption = Annotated[
    int | None, typer.Option("--trials", min=1, help="Trials of a fresh search (default 4).")
]
WindowOption = Annotated[
    float | None, typer.Option("--window-hours", help="Recent window in hours (default 24).")
]


def _config(policy: str | None, trials: int | None, window_h: float | None) -> RetrainConfig:
    from pydantic import ValidationError

    from pipelines.retrain import RetrainConfig

    overrides: dict[str, Any] = {
        k: v
        for k, v in (("policy", policy), ("trials", trials), ("window_h", window_h))
        if v is not None
    }
    try:
        return RetrainConfig(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"--{'-'.join(map(str, first['loc']))}: {first['msg']}")


def _quiet() -> None:
    from pipelines.cli._train import _quiet_training_stack

    _quiet_training_stack()
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _run_job(
    settings: Settings, served_model: str, config: RetrainConfig, trigger: str
) -> RetrainOutcome:
    from feature_store import open_store
    from pipelines.retrain import retrain
    from registry import MLflowRegistry

    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    with open_store(settings) as store:
        return retrain(served_model, settings, store, registry, config=config, trigger=trigger)


@app.command("retrain")
def retrain_command(
    served_model: Annotated[str, typer.Option("--served-model", help="Served model.")],
    policy: PolicyOption = None,
    trials: TrialsOption = None,
    window_hours: WindowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retrain one served model on its recent window plus a reference sample.

    Registers a challenger, scores it and the champion on the most recent held-out
    records and promotes under the policy; the job is one MLflow run.
    """
    _quiet()
    config = _config(policy, trials, window_hours)
    settings = Settings()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
    ) as bar:
        bar.add_task(f"retrain {served_model} ({config.policy})", total=None)
        try:
            outcome = _run_job(settings, served_model, config, "manual")
        except (TailcastError, ValueError, RuntimeError) as exc:
            fail(str(exc))
    if as_json:
        print_json(outcome.as_json())
        return
    console.print(_summary(outcome))


def _summary(outcome: RetrainOutcome) -> str:
    state = "promoted to champion" if outcome.promoted else "kept as challenger"
    held = outcome.holdout
    versus = (
        f"; held-out mean pinball {held['challenger']['mean_pinball']:.4f} vs champion "
        f"{held['champion']['mean_pinball']:.4f}"
        if "champion" in held
        else ""
    )
    how = "warm start" if outcome.warm_start else "search"
    return (
        f"tailcast-{outcome.served_model} v{outcome.version} ({state}, {how}, "
        f"{outcome.rows['train']:,} training rows){versus}; MLflow run {outcome.run_id}"
    )


def _served_models(settings: Settings) -> list[str]:
    from registry import MLflowRegistry

    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    names = {v.name.removeprefix("tailcast-") for v in registry.list_versions()}
    return sorted(names)


@app.command("schedule")
def schedule_command(
    cron: Annotated[str, typer.Option("--cron", help="Five-field cron expression, UTC.")],
    served_model: Annotated[
        list[str] | None,
        typer.Option(
            "--served-model",
            help="Served model to retrain (repeatable; default: every "
            "registered one, looked up at each run).",
        ),
    ] = None,
    policy: PolicyOption = None,
    trials: TrialsOption = None,
    window_hours: WindowOption = None,
    runs: Annotated[
        int | None, typer.Option("--runs", min=1, help="Stop after this many rounds.")
    ] = None,
    show: Annotated[int, typer.Option("--show", min=1, help="Upcoming run times to print.")] = 3,
) -> None:
    """Retrain on a cron schedule in this process (Ctrl-C stops; clusters: a CronJob).

    A failing job is logged and the schedule continues.
    """
    from pipelines.schedule import CronScheduler

    _quiet()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = _config(policy, trials, window_hours)
    settings = Settings()

    def each_model() -> object:
        models = served_model or _served_models(settings)
        failures = []
        for name in models:
            try:
                outcome = _run_job(settings, name, config, "schedule")
                console.print(_summary(outcome))
            except Exception as exc:  # the next model still runs
                logging.getLogger(__name__).exception("retraining %s failed", name)
                failures.append(f"{name}: {exc}")
        if failures:
            raise RuntimeError("; ".join(failures))
        return len(models)

    def on_run(run: JobRun) -> None:
        status = "[red]failed[/]" if run.error else "[green]ok[/]"
        console.print(
            f"{run.scheduled:%Y-%m-%d %H:%M} UTC round {status} in {run.seconds:.0f} s"
            + (f": {run.error}" if run.error else "")
        )
        console.print(f"next: {scheduler.next_runs(1)[0]:%Y-%m-%d %H:%M} UTC")

    try:
        scheduler = CronScheduler(cron, {"retrain": each_model}, on_run=on_run)
    except ValueError as exc:
        fail(str(exc))
    upcoming = ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in scheduler.next_runs(show))
    console.print(
        f"retraining {', '.join(served_model or ['every registered model'])}; "
        f"next runs (UTC): {upcoming}"
    )
    try:
        scheduler.run(rounds=runs, stop=threading.Event())
    except KeyboardInterrupt:
        console.print("stopped")
