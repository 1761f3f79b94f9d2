"""A registry outage under load: seen within seconds, survived, recovered from.

A real ``mlflow server`` on a fresh PostgreSQL database holds a tiny champion; a real
``tailcast serve`` (clean environment, port from the OS, 1 s poll interval) serves it
to a client thread posting forecasts without pause. The server's process group is
frozen with SIGSTOP (it accepts connections but never answers: the hardest outage for
a client) and continued with SIGCONT. A second service starts against a registry that
never answers at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import pytest

from registry import MLflowRegistry, bound_http_calls
from serving._metrics import ServiceMetrics
from serving._models import ModelTable
from serving._poller import ModelPoller

if TYPE_CHECKING:  # mypy maps tests/<pkg>/*.py to top-level modules (no __init__.py)
    from _fixtures import SERVED, register, request
    from _replicas import TAILCAST, Replica, clean_env, free_port, wait_for
    from _server import mlflow_server
else:
    from tests.registry._server import mlflow_server
    from tests.serving._fixtures import SERVED, register, request
    from tests.serving._replicas import TAILCAST, Replica, clean_env, free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TOKEN = "outage-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POLL_INTERVAL_S = 1.0
FLAGS = ("--no-llmd-retrain", "--no-drift-retrain", "--poll-interval", str(POLL_INTERVAL_S))
SEEN_WITHIN_S = 10.0  # outage visible in /readyz and the metric
RELOAD_WITHIN_S = 8.0  # the poll limit (5 s) and slack
OUTAGE_S = 14.0  # longer than one stuck MLflow call (5 s timeout, 1 retry)


@dataclass
class Forecasts:
    """A client thread posting one forecast after another; every answer is kept."""

    url: str
    answers: list[tuple[float, int, int | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                try:
                    r = client.post("/v1/forecasts", json={"requests": [request()]})
                    version = r.json()["forecasts"][0]["model_version"] if r.is_success else None
                    self.answers.append((time.monotonic(), r.status_code, version))
                except httpx.HTTPError:
                    self.answers.append((time.monotonic(), 0, None))
                time.sleep(0.02)

    def between(self, start: float, end: float) -> list[tuple[float, int, int | None]]:
        return [a for a in self.answers if start <= a[0] <= end]


@contextlib.contextmanager
def streaming(url: str) -> Iterator[Forecasts]:
    forecasts = Forecasts(url)
    thread = threading.Thread(target=forecasts.run, name="forecast-client", daemon=True)
    thread.start()
    try:
        yield forecasts
    finally:
        forecasts.stop.set()
        thread.join(timeout=30)


def server_group(url: str) -> int:
    """The process group of the ``mlflow server`` listening at ``url``."""
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0") if proc.name.isdigit() else []
            if b"server" in argv and b"--port" in argv and port.encode() in argv:
                return os.getpgid(int(proc.name))
    raise AssertionError(f"no mlflow server process listens on port {port}")


def readiness(url: str) -> tuple[int, dict[str, Any]]:
    r = httpx.get(f"{url}/readyz", timeout=5)
    body: dict[str, Any] = r.json()
    return r.status_code, body


def registry_up(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    (line,) = [ln for ln in text.splitlines() if ln.startswith("tailcast_registry_up ")]
    return float(line.split()[1])


def seconds_until(check: Callable[[], bool], since: float, timeout_s: float, what: str) -> float:
    wait_for(check, timeout_s, what)
    return time.monotonic() - since


def frozen(url: str) -> bool:
    try:
        httpx.get(f"{url}/health", timeout=1)
    except httpx.TimeoutException:
        return True
    return False


def test_a_frozen_registry_is_seen_survived_and_recovered_from(
    tmp_path: Path, postgres_database: Callable[[], contextlib.AbstractContextManager[str]]
) -> None:
    (tmp_path / "mlflow").mkdir()
    with postgres_database() as database, mlflow_server(database, tmp_path / "mlflow") as url:
        register(MLflowRegistry(url), SERVED)
        env = clean_env(
            TAILCAST_HOME=str(tmp_path / "home"),
            TAILCAST_MLFLOW_TRACKING_URI=url,
            TAILCAST_API_TOKEN=TOKEN,
        )
        replica = Replica(tmp_path / "home", env, FLAGS).start()
        group = server_group(url)
        try:
            with streaming(replica.url) as forecasts:
                time.sleep(1.0)  # forecasts flow before the outage
                os.killpg(group, signal.SIGSTOP)
                stopped = time.monotonic()
                assert frozen(url)
                seen = seconds_until(
                    lambda: readiness(replica.url)[1]["registry"]["reachable"] is False,
                    stopped,
                    SEEN_WITHIN_S,
                    "for /readyz to report the outage",
                )
                metric = seconds_until(
                    lambda: registry_up(replica.url) == 0.0,
                    stopped,
                    SEEN_WITHIN_S,
                    "for the metric",
                )
                code, ready = readiness(replica.url)
                assert code == 200  # the last good model is loaded and serving
                assert "did not answer" in ready["registry"]["last_error"]

                began = time.monotonic()
                reload = httpx.post(f"{replica.url}/v1/models/reload", headers=AUTH, timeout=60)
                reload_s = time.monotonic() - began
                assert reload.status_code == 503
                assert reload.json()["registry_error"]
                assert [m["loaded_version"] for m in reload.json()["models"]] == [1]

                time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
                os.killpg(group, signal.SIGCONT)
                continued = time.monotonic()
                recovered = seconds_until(
                    lambda: (
                        readiness(replica.url)[1]["registry"]["reachable"] is True
                        and registry_up(replica.url) == 1.0
                    ),
                    continued,
                    POLL_INTERVAL_S + 6.0,
                    "for the recovery",
                )
                time.sleep(0.5)
            during = forecasts.between(stopped, continued)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGCONT)
            replica.stop()

    statuses = {status for _, status, _ in forecasts.answers}
    versions = {version for _, _, version in forecasts.answers}
    print(
        f"\noutage seen in /readyz after {seen:.2f} s, in tailcast_registry_up after "
        f"{metric:.2f} s; reload answered in {reload_s:.2f} s; recovered "
        f"{recovered:.2f} s after SIGCONT; {len(during)} forecasts during the "
        f"{continued - stopped:.1f} s outage, {len(forecasts.answers)} in all"
    )
    assert statuses == {200}
    assert versions == {1}
    assert len(during) >= 100  # the stream kept flowing, not one answer
    assert seen <= SEEN_WITHIN_S
    assert metric <= SEEN_WITHIN_S
    assert reload_s <= RELOAD_WITHIN_S
    assert recovered <= POLL_INTERVAL_S + 2.0


@contextlib.contextmanager
def silent_registry() -> Iterator[str]:
    """A TCP listener that accepts connections and never answers: an HTTP registry URL."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as sock:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.contextmanager
def missing_database() -> Iterator[str]:
    """A PostgreSQL registry URI whose database does not exist."""
    yield f"postgresql://postgres@127.0.0.1:5432/tailcast_missing_{os.getpid()}"


def bound(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@pytest.mark.parametrize(
    ("registry", "reason"),
    [(silent_registry, "did not answer"), (missing_database, "does not exist")],
    ids=["silent-http", "missing-database"],
)
def test_a_service_started_against_an_unusable_registry_is_alive_not_ready(
    tmp_path: Path, registry: Callable[[], contextlib.AbstractContextManager[str]], reason: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with registry() as registry_url:
        env = clean_env(TAILCAST_HOME=str(home), TAILCAST_MLFLOW_TRACKING_URI=registry_url)
        spawned = time.monotonic()
        proc = subprocess.Popen(
            [str(TAILCAST), "serve", "--host", "127.0.0.1", "--port", str(port), *FLAGS],
            env=env,
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for(lambda: proc.poll() is not None or bound(port), 60, "for the bind")
            assert proc.poll() is None
            listening = time.monotonic()
            health = httpx.get(f"{url}/healthz", timeout=30)
            healthz_s = time.monotonic() - listening
            assert health.status_code == 200
            named_s = seconds_until(
                lambda: readiness(url)[1]["registry"]["reachable"] is False,
                listening,
                SEEN_WITHIN_S,
                "for /readyz to name the registry's fault",
            )
            code, ready = readiness(url)
            began = time.monotonic()
            reload = httpx.post(f"{url}/v1/models/reload", timeout=60)
            reload_s = time.monotonic() - began
            up = registry_up(url)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(
        f"\nbound {listening - spawned:.2f} s after spawn; /healthz answered "
        f"{healthz_s:.2f} s after the bind; /readyz named the fault after {named_s:.2f} s; "
        f"reload answered in {reload_s:.2f} s"
    )
    assert healthz_s <= 2.0
    assert code == 503
    assert ready["status"] == "not_ready"
    assert reason in ready["registry"]["last_error"]
    assert up == 0.0
    assert reload.status_code == 503
    assert reason in reload.json()["registry_error"]
    assert reload_s <= RELOAD_WITHIN_S


class HangingRegistry:
    """Answers "no champion" at once, or hangs while ``gate`` is clear."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()

    def alias_version(self, served_model: str, alias: str) -> None:
        self.gate.wait()


def poll_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "tailcast-registry-poll"}


def test_a_hung_registry_call_bounds_the_poll_and_its_thread_reports_the_recovery() -> None:
    fake = HangingRegistry()
    metrics = ServiceMetrics()
    poller = ModelPoller(
        ModelTable(),
        metrics,
        registry=cast(MLflowRegistry, fake),
        served_models=[SERVED],
        interval_s=60,
        timeout_s=0.5,
    )

    async def scenario() -> tuple[float, float]:
        assert (await poller.poll_now()).reachable is True
        fake.gate.clear()
        began = time.monotonic()
        hung = await poller.poll_now()
        first = time.monotonic() - began
        assert hung.reachable is False
        assert "did not answer" in str(hung.last_error)
        began = time.monotonic()
        again = await poller.poll_now()  # joins the stuck poll, starts no other thread
        return first, time.monotonic() - began if again.reachable is False else -1.0

    others = poll_threads()  # of other services in this process, if any
    first, second = asyncio.run(scenario())
    assert 0.5 <= first <= 1.0
    assert 0.0 <= second <= 0.2
    (stuck,) = poll_threads() - others
    sample = metrics.registry.get_sample_value
    assert sample("tailcast_registry_errors_total") == 1  # one stuck poll, counted once
    assert sample("tailcast_registry_up") == 0
    fake.gate.set()  # the registry answers: the stuck thread records it, no new poll
    wait_for(lambda: poller.status.reachable is True, 2.0, "for the recovery")
    assert sample("tailcast_registry_up") == 1
    stuck.join(timeout=2.0)
    assert not stuck.is_alive()


def test_mlflow_http_limits_are_set_unless_the_operator_set_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    names = ("TIMEOUT", "MAX_RETRIES", "BACKOFF_FACTOR")
    for name in names:  # recorded, so the test leaves the environment as it found it
        monkeypatch.setenv(f"MLFLOW_HTTP_REQUEST_{name}", "0")
        monkeypatch.delenv(f"MLFLOW_HTTP_REQUEST_{name}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")  # the operator's choice
    applied = bound_http_calls(5, 1)
    assert applied == {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    }
    read = [v.get() for v in (MLFLOW_HTTP_REQUEST_TIMEOUT, MLFLOW_HTTP_REQUEST_MAX_RETRIES)]  # type: ignore[no-untyped-call]
    assert read == [5, 3]  # what MLflow reads on every call
    with pytest.raises(ValueError, match="timeout_s"):
        bound_http_calls(0, 1)


def test_a_store_that_cannot_be_opened_still_fails_the_start(tmp_path: Path) -> None:
    missing = f"tailcast_missing_store_{os.getpid()}"
    env = clean_env(
        TAILCAST_HOME=str(tmp_path),
        TAILCAST_STORE_URL=f"postgresql://postgres@127.0.0.1:5432/{missing}",
    )
    began = time.monotonic()
    done = subprocess.run(
        [str(TAILCAST), "serve", "--host", "127.0.0.1", "--port", "0", *FLAGS],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - began
    log = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 3, log[-2000:]  # uvicorn's startup failure
    assert "tailcast cannot start: cannot open feature store" in log
    assert f'database "{missing}" does not exist' in log
    assert elapsed < 30
