"""``tailcast run``: bring the stack up on embedded defaults (what ``make run`` does)."""

from __future__ import annotations

from typing import Annotated

import typer

from core import Settings
from pipelines.cli._common import console
from pipelines.cli._store import print_stats

DEMO_SOURCE = "demo-workload"


def run(
    records: Annotated[int, typer.Option(help="Demo records to generate on first run.")] = 50_000,
    seed: Annotated[int, typer.Option(help="Demo workload seed.")] = 0,
) -> None:
    """Set up the home directory, load the demo workload once, and report.

    Idempotent: a second run finds the demo records already stored and adds nothing.
    """
    from feature_store import open_store
    from feature_store.workload import WorkloadConfig, generate_workload, write_workload

    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    demo_file = settings.home / "demo" / f"workload-seed{seed}-{records}.parquet"
    if not demo_file.exists():
        with console.status(f"generating the demo workload ({records:,} records)"):
            demo_file.parent.mkdir(parents=True, exist_ok=True)
            write_workload(
                generate_workload(WorkloadConfig(seed=seed, n_records=records)), demo_file
            )
    from feature_store.importers import get_importer

    with open_store(settings.resolved_store_path) as db:
        report = db.ingest_batches(get_importer("parquet").read(demo_file), source=DEMO_SOURCE)
        console.print(
            f"demo workload {demo_file}: {report.accepted:,} new, "
            f"{report.duplicates:,} already stored, {len(report.rejected):,} rejected"
        )
        print_stats(db.stats())
    console.print(
        "[bold yellow]serving is not there yet[/]: the prediction API arrives with the "
        "serving issue. The store above is ready for `tailcast` training and drift jobs."
    )
