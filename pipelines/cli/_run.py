"""``tailcast run``: bring the stack up on embedded defaults (what ``make run`` does).

Steps, each idempotent: load the demo workload into the store once; register a
fallback champion (:mod:`pipelines.fallback`: empirical quantiles per prompt class and
device, fitted in well under a second) for each demo served model that has no champion;
start the MLflow UI on the embedded registry and serve the prediction API in the
foreground, ready as soon as the fallbacks load. Searched champions
(:mod:`pipelines.quick`: cheap text variants, a few trials; ``tailcast train`` does the
full search later) train in the background for every served model still on a fallback,
and each one that beats its fallback on held-out rows is promoted and swapped in by the
service's poller; ``/readyz`` says which kind each served model runs. Ctrl-C stops both.
The service owns the store and brokers it, so every other command works on the same
home while it runs; a second ``tailcast run`` finds it running, says where, and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from core import Settings, TailcastError
from pipelines.cli._common import console, fail, progress_bar
from pipelines.cli._store import print_stats

if TYPE_CHECKING:
    from fastapi import FastAPI

    from feature_store import RecordStore
    from serving import ServiceState

DEMO_SOURCE = "demo-workload"
MLFLOW_PORT = 5000
#: Seconds after which a first champion's search starts no new trial.
FIRST_TRAIN_TIMEOUT_S = 120.0


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
    with open_store(settings) as db:
        # History to train on, not outcomes of a champion's forecasts: not judged for drift.
        report = db.ingest_batches(
            get_importer("parquet").read(demo_file), source=DEMO_SOURCE, judge=False
        )
        console.print(
            f"demo workload {demo_file}: {report.accepted:,} new, "
            f"{report.duplicates:,} already stored, {len(report.rejected):,} rejected"
        )
        stats = db.stats()
        print_stats(stats)
    return sorted({g.served_model for g in stats.groups})


def _champion_kinds(settings: Settings, served_models: list[str]) -> dict[str, str | None]:
    """Each served model's champion kind: None (no champion), ``fallback`` or ``trained``."""
    from registry import MLflowRegistry

    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    kinds: dict[str, str | None] = {}
    for name in served_models:
        champion = registry.alias_version(name)
        kinds[name] = None if champion is None else (champion.kind or "trained")
        if champion is not None:
            console.print(f"{name}: champion v{champion.version} ({kinds[name]}) registered")
    return kinds


def _register_fallback(settings: Settings, store: RecordStore, name: str) -> None:
    """Register and promote ``name``'s fallback champion (empirical quantiles)."""
    from pipelines.fallback import FallbackRequest, register_fallback

    frame = store.training_frame(name, columns=("latency_s", "device", "prompt_class"))
    result = register_fallback(settings, frame, FallbackRequest(served_model=name))
    console.print(
        f"{name}: registered fallback v{result.version} as champion ({result.rows:,} records; "
        f"held-out mean pinball {result.mean_pinball:.3f} s, coverage of 0.9 "
        f"{result.coverage.get('0.9', float('nan')):.2f})"
    )


def _train_champion(
    settings: Settings, store: RecordStore, name: str, trials: int, show: bool
) -> None:
    """Search and register a champion for ``name``; promoted if it beats the current one.

    Shows a progress bar of the search trials when ``show``.
    """
    from pipelines.cli._train import _quiet_training_stack

    _quiet_training_stack()
    from pipelines.quick import QuickTrain, train_and_register
    from pipelines.train import text_provider

    frame = store.training_frame(name, require=("latency_s",))
    provider = text_provider(store, settings.home / "cache" / "static_tables", None)
    plan = QuickTrain(key=name, trials=trials, timeout_s=FIRST_TRAIN_TIMEOUT_S)
    with progress_bar(hidden=not show) as bar:
        task = bar.add_task(f"searched champion for {name}: trials", total=trials)
        version, promoted = train_and_register(
            settings, frame, plan, provider, on_trial=lambda _: bar.update(task, advance=1)
        )
    verdict = "promoted to champion" if promoted else "not promoted (the champion scored better)"
    console.print(f"{name}: searched v{version} {verdict} ({frame.num_rows:,} records)")


class BackgroundChampions:
    """Service hook: trains searched champions while the API already serves the fallbacks.

    Args:
        settings: tailcast settings.
        names: Served models still served by a fallback.
        trials: Search trials each.
    """

    def __init__(self, settings: Settings, names: list[str], trials: int) -> None:
        self.settings = settings
        self.names = names
        self.trials = trials
        self._task: asyncio.Task[None] | None = None

    async def start(self, service: ServiceState) -> None:
        """Start training (one served model after the other, in a worker thread)."""
        self._task = asyncio.create_task(self._train_all(service))

    async def _train_all(self, service: ServiceState) -> None:
        for name in self.names:
            console.print(f"{name}: searching a champion in the background")
            try:
                await asyncio.to_thread(
                    _train_champion, self.settings, service.store, name, self.trials, False
                )
            except Exception as exc:  # the service keeps serving the others
                console.print(f"[yellow]{name}: no champion trained: {exc}[/]")
                continue
            await service.poller.poll_now()

    async def stop(self) -> None:
        """Stop waiting for the training (a fit in flight ends with the process)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


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
    console.print(f"MLflow UI starting on http://127.0.0.1:{MLFLOW_PORT}")
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
    from feature_store import open_store, read_broker

    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    running = None if settings.store_url else read_broker(settings.resolved_store_path)
    if running is not None and serve:
        console.print(
            f"a tailcast service (pid {running.pid}) already serves this home at "
            f"{running.url}; not starting another. Other commands (tailcast ingest, train, "
            f"store stats...) go through it; stop it (Ctrl-C or kill {running.pid}) to restart."
        )
        return
    try:
        served_models = _load_demo(settings, records, seed)
        kinds = _champion_kinds(settings, served_models) if train else {}
        search = [name for name, kind in kinds.items() if kind in (None, "fallback")]
        with open_store(settings) as store:
            for name in (n for n, kind in kinds.items() if kind is None):
                _register_fallback(settings, store, name)
            if not serve:
                for name in search:
                    _train_champion(settings, store, name, trials, show=True)
                return
    except TailcastError as exc:
        fail(exc)
    _serve(settings, search, trials)


def _serve(settings: Settings, missing: list[str], trials: int) -> None:
    """Start the MLflow UI and serve the API (it owns and brokers the store) until Ctrl-C."""
    from pipelines.cli._serve import bind, run_uvicorn
    from pipelines.drift_trigger import service_trigger
    from serving import create_app

    sock, url = bind(settings.host, settings.port)
    ui = _start_mlflow_ui(settings)
    console.print(f"serving on {url} (OpenAPI: {url}/docs, readiness: {url}/readyz); Ctrl-C stops")
    hooks = [BackgroundChampions(settings, missing, trials)] if missing else []
    app: FastAPI | None = None
    try:
        app = create_app(
            settings,
            poll_interval_s=10.0,
            hooks=hooks,
            on_retrain=service_trigger(settings, lambda: app),
            public_url=url,
        )
        run_uvicorn(app, settings.host, settings.port, log_level="warning", sock=sock)
    finally:
        if ui is not None:
            ui.terminate()
            ui.wait(timeout=10)
