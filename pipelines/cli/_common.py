"""Helpers shared by CLI commands: settings, console output, error exits."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from core import Settings, TailcastError

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn

    from feature_store import RecordStore

console = Console(stderr=True)

StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="Feature-store file (default: $TAILCAST_STORE_PATH or <home>/store.duckdb).",
        dir_okay=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON document on stdout.")]


def store_path(explicit: Path | None) -> Path:
    """The store path: the option if given, else from settings."""
    return explicit if explicit is not None else Settings().resolved_store_path


def open_cli_store(explicit: Path | None = None, settings: Settings | None = None) -> RecordStore:
    """Open the store a command works on, or exit with the reason it cannot be opened.

    ``--store`` names a DuckDB file; otherwise the settings' store (PostgreSQL when
    ``TAILCAST_STORE_URL`` is set). A DuckDB file held by a running ``tailcast serve``
    is reached through that service (:func:`feature_store.open_store`).
    """
    from feature_store import open_store

    try:
        return open_store(explicit if explicit is not None else settings or Settings())
    except TailcastError as exc:
        fail(exc)


def print_json(document: Any) -> None:
    """Write ``document`` as JSON to stdout (dates as ISO strings)."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def fail(error: TailcastError | str, code: int = 2) -> NoReturn:
    """Print an error on stderr (one unwrapped line: paths stay greppable) and exit."""
    console.print(f"[bold red]error:[/] {error}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def progress_bar(*, hidden: bool, extra: tuple[ProgressColumn, ...] = ()) -> Progress:
    """The CLI's progress bar: description, bar, done/total, ``extra`` columns, elapsed.

    On a terminal it is a live bar; in a piped log, a plain line per task every few
    seconds (:class:`pipelines.cli._progress.LineProgress`).

    Args:
        hidden: Draw nothing (e.g. under ``--json``, whose stdout must stay a document).
        extra: Columns shown between the counts and the elapsed time.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
    )
    if not hidden and not console.is_terminal:  # a piped log: plain lines, every few s
        from pipelines.cli._progress import LineProgress

        return LineProgress(*columns, console=console)
    return Progress(*columns, console=console, disable=hidden)
