"""Helpers of the broker tests: a real ``tailcast serve`` subprocess on a free port.

The service binds port 0 (the OS picks a free port) and advertises the URL it bound in
its store's broker file; the helpers wait for that file. Imported explicitly by the
test modules (the repo has one conftest.py only).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from feature_store import BrokerInfo, read_broker

TAILCAST = Path(sys.executable).parent / "tailcast"


def clean_env(home: Path, token: str | None = None, **extra: str) -> dict[str, str]:
    """This environment without TAILCAST_*/MLFLOW_* variables, with ``TAILCAST_HOME=home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAILCAST_", "MLFLOW_"))}
    env.update(TAILCAST_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)
    if token is not None:
        env["TAILCAST_API_TOKEN"] = token
    return env


def tailcast(
    *args: str, home: Path, token: str | None = None, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the ``tailcast`` console script on ``home`` (clean environment)."""
    return subprocess.run(
        [str(TAILCAST), *args],
        capture_output=True,
        text=True,
        env=clean_env(home, token),
        timeout=timeout_s,
    )


@contextmanager
def serving(
    home: Path, *args: str, token: str | None = None, start_timeout_s: float = 120.0
) -> Iterator[BrokerInfo]:
    """``tailcast serve --port 0 <args>`` on ``home``; yields its broker entry.

    The process (and its group) is killed when the block ends, whatever happens.
    """
    home.mkdir(parents=True, exist_ok=True)
    log = (home / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(TAILCAST), "serve", "--host", "127.0.0.1", "--port", "0", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=clean_env(home, token),
        start_new_session=True,
    )
    try:
        yield _wait_for_broker(home / "store.duckdb", proc, start_timeout_s)
    finally:
        _stop(proc)
        log.close()


def _wait_for_broker(store: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> BrokerInfo:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = read_broker(store)
        if info is not None and info.pid == proc.pid:
            return info
        if proc.poll() is not None:
            log = (store.parent / "serve.log").read_text(errors="replace")
            raise RuntimeError(f"tailcast serve exited with {proc.returncode}:\n{log[-3000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"tailcast serve advertised no broker within {timeout_s:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (a clean shutdown removes the broker file), SIGKILL after 20 s."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)
