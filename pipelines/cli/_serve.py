"""``tailcast serve``: the prediction API under uvicorn (uvloop + httptools, no access log)."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer

from core import Settings
from pipelines.cli._common import fail

if TYPE_CHECKING:
    from fastapi import FastAPI


logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether ``host`` reaches this machine only (every address it resolves to).

    Wildcards (``0.0.0.0``, ``::``) and names that do not resolve are not loopback.

    >>> is_loopback("127.0.0.1"), is_loopback("[::1]"), is_loopback("localhost")
    (True, True, True)
    >>> is_loopback("0.0.0.0"), is_loopback("::"), is_loopback("10.1.2.3")
    (False, False, False)
    """
    name = host.strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(a[4][0]).is_loopback for a in found)


def check_exposure(host: str, settings: Settings, allow_no_token: bool) -> None:
    """Exit 2 before binding a non-loopback ``host`` when no API token is set.

    Without ``TAILCAST_API_TOKEN`` anyone who reaches the port can post completions
    and reload models; the operator must say so (``--allow-no-token`` or
    ``TAILCAST_ALLOW_NO_TOKEN=true``), and is then warned once.
    """
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    if token or is_loopback(host):
        return
    if allow_no_token or settings.allow_no_token:
        logger.warning("serving on %s without an API token: writes are open to anyone", host)
        return
    fail(
        f"refusing to serve on {host or 'every interface'} without an API token: anyone "
        "who reaches it could post completions and reload models. Set TAILCAST_API_TOKEN, "
        "bind a loopback address (--host 127.0.0.1), or pass --allow-no-token "
        "(TAILCAST_ALLOW_NO_TOKEN=true) to serve unauthenticated on purpose."
    )


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
    adaptive_calibration: Annotated[
        bool,
        typer.Option(
            help="Serve quantiles adjusted by the online conformal offsets the drift "
            "judge learns (--no-adaptive-calibration: the champion's own)."
        ),
    ] = True,
    allow_no_token: Annotated[
        bool,
        typer.Option(
            "--allow-no-token",
            help="Bind a non-loopback address without TAILCAST_API_TOKEN "
            "(default: $TAILCAST_ALLOW_NO_TOKEN; refused otherwise).",
        ),
    ] = False,
) -> None:
    """Serve forecasts, completions, models, health, metrics and llm-d's endpoints.

    Loads each served model's ``champion`` from the registry at start and polls it;
    retrains llm-d's TTFT and TPOT predictors in the background from the samples
    posted to ``/add_training_data_bulk``; on a drift alarm (debounced by the
    monitor's cooldown) runs ``tailcast pipeline retrain`` for that served model in a
    spawned child process (the service never loads the training stack), and the poller
    swaps in the new champion if the promotion policy (``TAILCAST_RETRAIN_*``) promotes
    it. OpenAPI at /docs.

    While it serves a DuckDB store it brokers it: the URL is advertised in
    ``<store file>.broker.json`` and the other commands on this home (ingest, train,
    store stats, pipeline retrain...) reach the store through the service.

    It answers /healthz at once; /readyz is 503 until a champion is loaded. A
    non-loopback --host needs TAILCAST_API_TOKEN, or --allow-no-token (exit 2).
    """
    settings = Settings()
    host = host or settings.host
    check_exposure(host, settings, allow_no_token)
    from pipelines.drift_trigger import service_trigger
    from pipelines.llmd import LlmdRetrainConfig, LlmdRetrainer
    from serving import ServingConfig, create_app

    hooks = []
    if llmd_retrain:
        config = LlmdRetrainConfig(interval_s=llmd_interval, min_samples=llmd_min_samples)
        hooks.append(LlmdRetrainer(settings, config))
    app: FastAPI | None = None
    on_retrain = service_trigger(settings, lambda: app) if drift_retrain else None
    port = settings.port if port is None else port
    sock, url = bind(host, port)
    app = create_app(
        settings,
        poll_interval_s=poll_interval,
        config=replace(ServingConfig.standalone(), adaptive_calibration=adaptive_calibration),
        hooks=hooks,
        on_retrain=on_retrain,
        public_url=url,
    )
    run_uvicorn(app, host, port, sock=sock)
