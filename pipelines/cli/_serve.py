"""``tailcast serve``: the prediction API under uvicorn (uvloop + httptools, no access log)."""

from __future__ import annotations

import contextlib
import socket
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from core import Settings
from pipelines.cli._common import fail

if TYPE_CHECKING:
    from fastapi import FastAPI

    from feature_store import RecordStore


def bind(host: str, port: int) -> tuple[socket.socket, str]:
    """Listen on ``host:port`` (0: a free port) before the app starts; (socket, local URL).

    The service advertises the URL in its store's broker file at startup, so the port
    must be known, and bound, by then.
    """
    from serving.app import local_host

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host.strip("[]"), port), family=family, backlog=2048)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc}")
    bound_host, bound_port = sock.getsockname()[:2]
    return sock, f"http://{local_host(str(bound_host))}:{bound_port}"


def run_uvicorn(
    app: FastAPI, host: str, port: int, log_level: str = "info", sock: socket.socket | None = None
) -> None:
    """Serve ``app`` with the fast uvicorn stack: uvloop, httptools, no per-request log.

    The access log is off because it costs CPU on every call and would be the one
    place a request line is written; request metrics are in ``/metrics``.

    Args:
        app: The application.
        host: Interface (bound here unless ``sock`` is given).
        port: TCP port (bound here unless ``sock`` is given).
        log_level: uvicorn's log level.
        sock: A listening socket from :func:`bind` to serve on.
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=log_level,
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=None if sock is None else [sock])
    if not server.started:
        sys.exit(3)  # uvicorn's startup-failure status


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings).")] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port (default: settings; 0: a free port).", min=0)
    ] = None,
    poll_interval: Annotated[
        float, typer.Option(help="Seconds between checks of the champion aliases.", min=0.1)
    ] = 30.0,
    llmd_retrain: Annotated[
        bool, typer.Option(help="Retrain llm-d TTFT/TPOT from /add_training_data_bulk.")
    ] = True,
    llmd_interval: Annotated[
        float, typer.Option(help="Seconds between llm-d retrain checks.", min=1.0)
    ] = 60.0,
    llmd_min_samples: Annotated[
        int, typer.Option(help="New llm-d samples needed for a retrain round.", min=100)
    ] = 200,
    drift_retrain: Annotated[
        bool,
        typer.Option(
            help="Retrain a served model when the drift monitor finds it out of distribution."
        ),
    ] = True,
) -> None:
    """Serve forecasts, completions, models, health, metrics and llm-d's endpoints.

    Loads each served model's ``champion`` from the registry at start and polls it;
    retrains llm-d's TTFT and TPOT predictors in the background from the samples
    posted to ``/add_training_data_bulk``; on a drift alarm (debounced by the
    monitor's cooldown) runs ``tailcast pipeline retrain`` for that served model in a
    background thread on the service's own store, and the poller swaps in the new
    champion if the promotion policy (``TAILCAST_RETRAIN_*``) promotes it. OpenAPI at /docs.

    While it serves a DuckDB store it brokers it: the URL is advertised in
    ``<store file>.broker.json`` and the other commands on this home (ingest, train,
    store stats, pipeline retrain...) reach the store through the service.
    """
    from pipelines.drift_trigger import drift_trigger
    from pipelines.llmd import LlmdRetrainConfig, LlmdRetrainer
    from serving import create_app

    settings = Settings()
    hooks = []
    if llmd_retrain:
        config = LlmdRetrainConfig(interval_s=llmd_interval, min_samples=llmd_min_samples)
        hooks.append(LlmdRetrainer(settings, config))
    app: FastAPI | None = None

    def service_store() -> RecordStore:
        assert app is not None
        store: RecordStore = app.state.service.store
        return store

    on_retrain = drift_trigger(settings, store=service_store) if drift_retrain else None
    host = host or settings.host
    port = settings.port if port is None else port
    sock, url = bind(host, port)
    app = create_app(
        settings,
        poll_interval_s=poll_interval,
        hooks=hooks,
        on_retrain=on_retrain,
        public_url=url,
    )
    run_uvicorn(app, host, port, sock=sock)
