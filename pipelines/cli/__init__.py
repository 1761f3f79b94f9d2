"""The ``tailcast`` command line.

Each command group lives in its own module and imports heavy dependencies
(DuckDB, pyarrow, the workload generator) only when it runs, so ``tailcast --help``
starts fast.
"""

from __future__ import annotations

import typer

from pipelines.cli import (
    _data,
    _drift,
    _models,
    _pipeline,
    _run,
    _serve,
    _simulate,
    _store,
    _train,
)
from pipelines.cli import _workflows as workflow_commands

app = typer.Typer(
    rich_markup_mode=None,
    name="tailcast",
    help="Distributional latency predictors for LLM and agentic serving clusters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("ingest")(_data.ingest)
app.command("demo-data")(_data.demo_data)
app.add_typer(_store.app, name="store")
app.command("run")(_run.run)
app.command("train")(_train.train)
app.command("serve")(_serve.serve)
app.command("evaluate")(_train.evaluate)
app.add_typer(_models.app, name="models")
app.command("evaluate-workflows")(workflow_commands.evaluate_workflows)
app.command("train-workflows")(workflow_commands.train_workflows)
app.command("simulate")(_simulate.simulate)
app.add_typer(_pipeline.app, name="pipeline")
app.add_typer(_drift.app, name="drift")


def main() -> None:
    """Entry point of the ``tailcast`` console script."""
    app()
