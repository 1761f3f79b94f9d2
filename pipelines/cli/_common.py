"""Helpers shared by CLI commands: settings, console output, error exits."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from core import Settings, TailcastError

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


def print_json(document: Any) -> None:
    """Write ``document`` as JSON to stdout (dates as ISO strings)."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def fail(error: TailcastError | str, code: int = 2) -> NoReturn:
    """Print an error on stderr and exit with ``code``."""
    console.print(f"[bold red]error:[/] {error}", highlight=False)
    raise typer.Exit(code)
