"""``tailcast run``: bring the stack up on embedded defaults (what ``make run`` does).

Steps, each idempotent: load the demo workload into the store once; train a champion
for every demo served model that has none; start the MLflow UI on the embedded
registry; serve the prediction API in the foreground (Ctrl-C stops both).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Annotated

import typer

from core import Settings
from pipelines.cli._common import console
from pipelines.cli._store import print_stats

DEMO_SOURCE = "demo-workload"
MLFLOW_PORT = 5000


def _load_demo(settings: Settings, records: int, seed: int) -> list[str]:
    """Generate (once) and ingest the demo workload; return its served models."""
    from feature_store import open_store
    from feature_store.importers import get_importer
    from feature_store.workload import WorkloadConfig, generate_workload, write_workload

    demo_file = settings.home / "demo" / f"workload-seed{seed}-{records}.parquet"
    if not demo_file.exists():
        with console.status(f"generating the demo workload ({records:,} records)"):
            demo_file.parent.mkdir(parents=True, exist_ok=True)
            table = generate_workload(WorkloadConfig(seed=seed, n_records=records))
            write_workload(table, demo_file)
    with open_store(settings.resolved_store_path) as db:
        report = db.ingest_batches(get_importer("parquet").read(demo_file), source=DEMO_SOURCE)
        console.print(
            f"demo workload {demo_file}: {report.accepted:,} new, "
            f"{report.duplicates:,} already stored, {len(report.rejected):,} rejected"
        )
        stats = db.stats()
        print_stats(stats)
    return sorted({g.served_model for g in stats.groups})


def _ensure_champions(settings: Settings, served_models: list[str], trials: int) -> None:
    """Train a champion for each served model the registry has none for."""
    from pipelines.cli._train import _quiet_training_stack

    _quiet_training_stack()
    from feature_store import open_store
    from pipelines.train import train_served_model
    from registry import MLflowRegistry

    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    for name in served_models:
        if registry.alias_version(name) is not None:
            console.print(f"{name}: champion already registered")
            continue
        with (
            console.status(f"training a first champion for {name} ({trials} trials)"),
            open_store(settings.resolved_store_path) as store,
        ):
            report = train_served_model(settings, store, name, trials=trials, timeout_s=120)
        console.print(
            f"{name}: registered v{report.version} as champion, held-out mean pinball "
            f"{report.metrics['mean_pinball']:.3f} s"
        )


def _start_mlflow_ui(settings: Settings) -> subprocess.Popen[bytes] | None:
    """The MLflow UI on the embedded SQLite registry (None for a remote registry)."""
    uri = settings.mlflow_tracking_uri or ""
    if not uri.startswith("sqlite:///"):
        console.print(f"registry: {uri} (remote; no local UI started)")
        return None
    db = Path(uri.removeprefix("sqlite:///"))
    log = (settings.home / "mlflow-ui.log").open("ab")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            uri,
            "--default-artifact-root",
            (db.parent / "mlartifacts").resolve().as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(MLFLOW_PORT),
        ],
        stdout=log,
        stderr=log,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    for _ in range(60):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{MLFLOW_PORT}/health", timeout=1)
            console.print(f"MLflow UI: http://127.0.0.1:{MLFLOW_PORT}")
            return proc
        except OSError:
            time.sleep(0.5)
    console.print(f"[yellow]MLflow UI did not answer; see {settings.home / 'mlflow-ui.log'}[/]")
    return proc


def run(
    records: Annotated[int, typer.Option(help="Demo records to generate on first run.")] = 50_000,
    seed: Annotated[int, typer.Option(help="Demo workload seed.")] = 0,
    train: Annotated[bool, typer.Option(help="Train champions that are missing.")] = True,
    trials: Annotated[int, typer.Option(help="Search trials for a first champion.")] = 4,
    serve: Annotated[bool, typer.Option(help="Start the MLflow UI and serve the API.")] = True,
) -> None:
    """Set up the home directory, load the demo workload, ensure champions, serve.

    Idempotent: a second run finds the demo records and the champions already there.
    """
    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    served_models = _load_demo(settings, records, seed)
    if train:
        _ensure_champions(settings, served_models, trials)
    if not serve:
        return
    import uvicorn

    from serving import create_app

    ui = _start_mlflow_ui(settings)
    base = f"http://{settings.host}:{settings.port}"
    console.print(
        f"serving on {base} (OpenAPI: {base}/docs, readiness: {base}/readyz); Ctrl-C stops"
    )
    try:
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port, log_level="warning"
        )
    finally:
        if ui is not None:
            ui.terminate()
            ui.wait(timeout=10)
