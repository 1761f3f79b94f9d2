"""``tailcast ingest`` and ``tailcast demo-data``."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from core import IngestReport, InputError, StoreError
from feature_store import RecordStore
from pipelines.cli._common import JsonOption, StoreOption, console, fail, open_cli_store, print_json

MAX_ERRORS_SHOWN = 20


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--option expects KEY=VALUE, got {pair!r}")
        options[key.strip().replace("-", "_")] = value
    return options


def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="Files to ingest.", exists=True, dir_okay=False)
    ],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="Source format, or 'auto' to detect by name.")
    ] = "auto",
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Importer option KEY=VALUE (repeatable)."),
    ] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
    drift: Annotated[
        bool,
        typer.Option(
            help="Hand the new completions to the drift judge; --no-drift for a backfill of "
            "history (training data, not outcomes of the current champion's forecasts)."
        ),
    ] = True,
) -> None:
    """Import completion records from files into the feature store.

    Each file is ingested in one transaction: a file-level error (unreadable,
    truncated, unknown columns) writes nothing; a bad row is rejected with its file,
    line and field and never takes good rows down. Re-running adds nothing.
    Exit status: 0 when every file was read (rows may be rejected), 2 on a
    file-level error.
    """
    options = _parse_options(option or [])
    total = IngestReport(accepted=0, duplicates=0)
    errors: list[dict[str, Any]] = []
    started = time.perf_counter()
    db = open_cli_store(store)
    try:
        for path in paths:
            report, rejected = _ingest_file(db, path, fmt, options, judge=drift, quiet=as_json)
            errors += rejected
            total = total + report
    except (InputError, StoreError) as exc:
        fail(exc)
    finally:
        db.close()
    elapsed = time.perf_counter() - started
    if as_json:
        print_json(
            {
                "accepted": total.accepted,
                "duplicates": total.duplicates,
                "rejected": len(total.rejected),
                "errors": errors,
                "seconds": round(elapsed, 3),
            }
        )
        return
    _print_summary(total, errors, elapsed)


def _ingest_file(
    db: RecordStore,
    path: Path,
    fmt: str,
    options: dict[str, Any],
    *,
    judge: bool,
    quiet: bool,
) -> tuple[IngestReport, list[dict[str, Any]]]:
    """Ingest one file in one transaction, with a progress bar unless ``quiet``.

    Returns:
        The store's report and one JSON-ready error per rejected row (file, line or
        record, field, reason and a message for people).

    Raises:
        InputError: A file-level error (nothing of the file was written).
        StoreError: The store failed (nothing of the file was written).
    """
    from feature_store.importers import detect_format, get_importer

    name = detect_format(path) if fmt == "auto" else fmt
    importer = get_importer(name, **options)
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records"),
        TimeElapsedColumn(),
        console=console,
        transient=quiet,
        disable=quiet,
    ) as bar:
        task = bar.add_task(f"{path.name} ({name})", total=None)
        report = db.ingest_batches(
            importer.read(path),
            source=str(path),
            progress=partial(bar.advance, task),
            judge=judge,
        )
    where = "row " if importer.location == "row" else ""
    errors = [
        {
            "file": str(path),
            importer.location: r.line,
            "field": r.field,
            "reason": r.reason,
            "message": r.describe(str(path), where),
        }
        for r in report.rejected
    ]
    return report, errors


def _print_summary(report: IngestReport, errors: list[dict[str, Any]], elapsed: float) -> None:
    table = Table(title="ingest", show_header=True)
    for col in ("accepted", "duplicates", "rejected", "records/s"):
        table.add_column(col, justify="right")
    rate = report.total / elapsed if elapsed > 0 else 0.0
    table.add_row(
        f"{report.accepted:,}",
        f"{report.duplicates:,}",
        f"{len(report.rejected):,}",
        f"{rate:,.0f}",
    )
    console.print(table)
    for err in errors[:MAX_ERRORS_SHOWN]:
        console.print(f"  [yellow]rejected[/] {err['message']}", highlight=False)
    if len(errors) > MAX_ERRORS_SHOWN:
        console.print(f"  … and {len(errors) - MAX_ERRORS_SHOWN:,} more (use --json for all)")


def demo_data(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Output file: .parquet, .jsonl[.gz] or .csv[.gz].", dir_okay=False
        ),
    ],
    records: Annotated[
        int, typer.Option("--records", "-n", min=1, help="Records to generate.")
    ] = 100_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same file).")] = 0,
) -> None:
    """Generate the built-in demo workload (agentic sessions on several devices)."""
    from feature_store.workload import WorkloadConfig, generate_workload, write_workload

    started = time.perf_counter()
    with console.status(f"generating {records:,} records"):
        table = generate_workload(WorkloadConfig(seed=seed, n_records=records))
        out.parent.mkdir(parents=True, exist_ok=True)
        write_workload(table, out)
    console.print(
        f"wrote {table.num_rows:,} records to {out} in {time.perf_counter() - started:.2f} s"
    )
