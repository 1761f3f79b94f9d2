"""``tailcast serve`` never exposes an unauthenticated API to the network by accident.

A non-loopback ``--host`` without ``TAILCAST_API_TOKEN`` exits 2 with the reason
before anything is bound, unless the operator allows it (``--allow-no-token`` or
``TAILCAST_ALLOW_NO_TOKEN=true``). Real subprocesses with clean environments.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import typer

from core import Settings
from pipelines.cli._serve import check_exposure, is_loopback

if TYPE_CHECKING:  # mypy maps tests/<pkg>/*.py to top-level modules (no __init__.py)
    from _replicas import TAILCAST, clean_env, free_port, wait_for
else:
    from tests.serving._replicas import TAILCAST, clean_env, free_port, wait_for

FAST = ("--no-llmd-retrain", "--no-drift-retrain")


def serve(home: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """``tailcast serve`` on ``home`` with a clean environment plus ``env``."""
    return subprocess.Popen(
        [str(TAILCAST), "serve", *args, *FAST],
        env=clean_env(TAILCAST_HOME=str(home), **env),
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def answers_healthz(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_wildcard_address_without_a_token_exits_2_before_binding(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    proc = serve(tmp_path, "--host", "0.0.0.0", "--port", str(port))
    out, _ = proc.communicate(timeout=60)
    text = " ".join(out.decode().split())  # rich wraps lines
    assert proc.returncode == 2, text
    assert "TAILCAST_API_TOKEN" in text
    assert "--allow-no-token" in text
    assert time.monotonic() - started < 30
    with socket.socket() as s:  # the port was never taken
        s.bind(("0.0.0.0", port))
    assert not (tmp_path / "store.duckdb").exists()  # nothing was opened either


@pytest.mark.parametrize(
    ("flags", "env"),
    [
        (("--allow-no-token",), {}),
        ((), {"TAILCAST_ALLOW_NO_TOKEN": "true"}),
    ],
    ids=["flag", "setting"],
)
def test_the_operator_may_allow_an_unauthenticated_wildcard_bind(
    tmp_path: Path, flags: tuple[str, ...], env: dict[str, str]
) -> None:
    port = free_port()
    proc = serve(tmp_path, "--host", "0.0.0.0", "--port", str(port), *flags, **env)
    try:
        wait_for(lambda: proc.poll() is not None or answers_healthz(f"http://127.0.0.1:{port}"))
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert b"without an API token" in out  # the warning the operator asked for


def test_a_token_or_a_loopback_address_needs_no_permission() -> None:
    with_token = Settings(api_token="t0ken", allow_no_token=False)
    no_token = Settings(api_token=None, allow_no_token=False)
    check_exposure("0.0.0.0", with_token, allow_no_token=False)
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
        check_exposure(host, no_token, allow_no_token=False)
    for host in ("0.0.0.0", "::", "", "192.0.2.7", "no-such-host.invalid"):
        assert not is_loopback(host), host
        with pytest.raises(typer.Exit) as refused:
            check_exposure(host, no_token, allow_no_token=False)
        assert refused.value.exit_code == 2
    empty = Settings(api_token="", allow_no_token=False)
    check_exposure("0.0.0.0", no_token, allow_no_token=True)  # the operator said so
    with pytest.raises(typer.Exit):
        check_exposure("0.0.0.0", empty, allow_no_token=False)  # an empty token is none
