"""Two replicas of the service on one PostgreSQL store: one judge, one alert, failover.

Two real ``tailcast serve`` subprocesses (ports from the OS, clean environments) share
a fresh PostgreSQL database on 127.0.0.1:5432 and an MLflow registry on one SQLite
file; a real HTTP receiver on loopback gets the alerts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from drift import SIGNATURE_HEADER, verify

if TYPE_CHECKING:  # mypy maps tests/<pkg>/*.py to top-level modules (no __init__.py)
    from _fixtures import SERVED, completion, free_port, new_registry, register
    from _receiver import Receiver
else:
    from tests.drift._receiver import Receiver
    from tests.serving._fixtures import SERVED, completion, free_port, new_registry, register

TAILCAST = Path(sys.executable).parent / "tailcast"
TOKEN = "replica-token"
SECRET = "replica-hook-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FLAGS = ("--no-llmd-retrain", "--no-drift-retrain", "--poll-interval", "1")

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _env(home: Path, store_url: str, tracking_uri: str, hook: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAILCAST_", "MLFLOW_"))}
    env.update(
        TAILCAST_HOME=str(home),
        TAILCAST_STORE_URL=store_url,
        TAILCAST_MLFLOW_TRACKING_URI=tracking_uri,
        TAILCAST_API_TOKEN=TOKEN,
        TAILCAST_DRIFT_WEBHOOK_URLS=f'["{hook}"]',
        TAILCAST_DRIFT_WEBHOOK_SECRET=SECRET,
        HF_HUB_OFFLINE="1",
    )
    return env


@contextlib.contextmanager
def _replica(home: Path, env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``tailcast serve`` on a free port; yields (base URL, process) once it is ready."""
    home.mkdir(parents=True)
    port = free_port()
    with (home / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(TAILCAST), "serve", "--host", "127.0.0.1", "--port", str(port), *FLAGS],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(lambda: _ready(url, proc, home), 120.0)
            yield url, proc
        finally:
            _stop(proc)


def _ready(url: str, proc: subprocess.Popen[bytes], home: Path) -> bool:
    if proc.poll() is not None:
        log = (home / "serve.log").read_text(errors="replace")
        raise RuntimeError(f"tailcast serve exited with {proc.returncode}:\n{log[-3000:]}")
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (clean shutdown), SIGKILL after 20 s."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=20)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


def _wait(check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return result


def _drift(url: str) -> dict[str, Any]:
    out: dict[str, Any] = httpx.get(f"{url}/v1/drift", timeout=10).json()
    return out


def _post(url: str, items: list[dict[str, Any]]) -> None:
    r = httpx.post(f"{url}/v1/completions", json={"completions": items}, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == len(items)


def test_two_replicas_judge_once_alert_once_and_fail_over(
    tmp_path: Path, postgres_database: Callable[[], contextlib.AbstractContextManager[str]]
) -> None:
    registry = new_registry(tmp_path)
    register(registry, SERVED)
    with postgres_database() as name, Receiver() as rx:
        store_url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        env = [_env(tmp_path / h, store_url, registry.tracking_uri, rx.url) for h in "ab"]
        with _replica(tmp_path / "a", env[0]) as first, _replica(tmp_path / "b", env[1]) as second:
            (a, proc_a), (b, proc_b) = first, second
            judge = _wait(lambda: [u for u in (a, b) if _drift(u)["judge"]])
            assert len(judge) == 1  # exactly one replica holds drift-judge
            # 100 completions far slower than any forecast, half to each replica.
            slow = [completion(f"s{i}", latency_s=5000.0) for i in range(100)]
            _post(a, slow[:50])
            _post(b, slow[50:])
            view = _wait(
                lambda: (v := _drift(judge[0]))["observed"] == 100 and not v["inbox"] and v
            )
            ((group,),) = [view["groups"]]
            assert (group["state"], group["n"]) == ("ood", 100)
            other = b if judge[0] == a else a
            idle = _drift(other)
            assert (idle["judge"], idle["observed"], idle["groups"]) == (False, 0, [])
            (event,) = idle["events"]  # the store's events, seen by every replica
            # Both replicas deliver; the alert goes out once.
            _wait(lambda: rx.requests)
            time.sleep(3.0)  # several delivery passes of both replicas
            assert [r.status for r in rx.requests] == [200]
            sent = rx.requests[0]
            assert sent.headers["X-Tailcast-Event"] == event["event_id"]
            assert verify(sent.body, SECRET, sent.headers[SIGNATURE_HEADER])
            # The judge dies without a goodbye: PostgreSQL frees its lock, the other
            # replica becomes the judge and judges what comes next.
            dead = proc_a if judge[0] == a else proc_b
            os.killpg(dead.pid, signal.SIGKILL)
            dead.wait(timeout=20)
            _wait(lambda: _drift(other)["judge"], 30.0)
            _post(other, [completion(f"n{i}") for i in range(5)])
            after = _wait(lambda: (v := _drift(other))["observed"] == 5 and not v["inbox"] and v)
            assert [g["n"] for g in after["groups"]] == [5]
