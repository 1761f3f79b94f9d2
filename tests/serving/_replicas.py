"""Real ``tailcast serve`` replicas as subprocesses, for the multi-replica tests.

Imported explicitly by the test modules (the repo has one conftest.py only). Each
replica gets a port from the OS and an environment without the caller's
``TAILCAST_*``/``MLFLOW_*`` variables.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

TAILCAST = Path(sys.executable).parent / "tailcast"


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment minus ``TAILCAST_*``/``MLFLOW_*``, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAILCAST_", "MLFLOW_"))}
    env.update(HF_HUB_OFFLINE="1", **settings)
    return env


def free_port() -> int:
    """A free TCP port on 127.0.0.1, chosen by the OS."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout_s: float = 60.0, what: str = "") -> Any:
    """Poll ``check`` every 0.1 s until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s {what}"
        time.sleep(0.1)
    return result


@dataclass
class Replica:
    """One ``tailcast serve`` process; :meth:`start` again after a kill restarts it."""

    home: Path
    env: dict[str, str]
    flags: tuple[str, ...] = ()
    url: str = ""
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    def start(self, timeout_s: float = 120.0) -> Replica:
        """Start on a new free port; return once ``/readyz`` answers 200."""
        self.home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.starts += 1
        log = self.home / f"serve-{self.starts}.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(TAILCAST), "serve", "--host", "127.0.0.1", "--port", str(port), *self.flags],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.home,
                start_new_session=True,
            )
        self.url = f"http://127.0.0.1:{port}"
        wait_for(self._ready, timeout_s, f"for {self.url}/readyz")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.home / f"serve-{self.starts}.log").read_text(errors="replace")
            raise RuntimeError(f"tailcast serve exited with {self.proc.returncode}:\n{log[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        return False

    def kill(self) -> None:
        """SIGKILL the replica's process group (no shutdown at all)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)

    def stop(self) -> None:
        """SIGINT (clean shutdown), SIGKILL after 20 s; nothing when not running."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(timeout=20)
        if proc.poll() is None:
            self.kill()

    def drift(self) -> dict[str, Any]:
        """``GET /v1/drift`` of this replica."""
        out: dict[str, Any] = httpx.get(f"{self.url}/v1/drift", timeout=10).json()
        return out

    def loaded_version(self, served_model: str) -> int | None:
        """The version of ``served_model`` this replica serves (None: not loaded)."""
        models = httpx.get(f"{self.url}/v1/models", timeout=10).json()["models"]
        for m in models:
            if m["served_model"] == served_model:
                return int(m["loaded_version"])
        return None


@contextlib.contextmanager
def replicas(*members: Replica) -> Iterator[tuple[Replica, ...]]:
    """Start every replica; stop them all on exit (also after a failure)."""
    try:
        for r in members:
            r.start()
        yield members
    finally:
        for r in members:
            r.stop()
