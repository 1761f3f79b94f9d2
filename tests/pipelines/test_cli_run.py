"""`tailcast demo-data` and `tailcast run` (what `make run` executes)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:  # mypy maps tests/pipelines/*.py to top-level modules (no __init__.py)
    from _cli import tailcast
    from _replicas import TAILCAST, clean_env
else:
    from tests.pipelines._cli import tailcast
    from tests.serving._replicas import TAILCAST, clean_env


def test_demo_data_is_reproducible_and_ingestible(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (a, b):
        res = tailcast(
            "demo-data", "--out", str(out), "--records", "2000", "--seed", "7", home=tmp_path
        )
        assert res.returncode == 0, res.stderr
    assert a.read_bytes() == b.read_bytes()
    res = tailcast("ingest", str(a), "--json", home=tmp_path)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert (report["accepted"], report["rejected"]) == (2000, 0)


def test_run_sets_up_and_is_idempotent(tmp_path: Path) -> None:
    first = tailcast("run", "--records", "3000", "--no-train", "--no-serve", home=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "3,000 new" in first.stderr
    second = tailcast("run", "--records", "3000", "--no-train", "--no-serve", home=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "0 new, 3,000 already stored" in second.stderr
    stats = json.loads(tailcast("store", "stats", "--json", home=tmp_path).stdout)
    assert stats["records"] == 3000
    assert len({g["device"] for g in stats["groups"]}) >= 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return cast("dict[str, Any]", json.loads(r.read()))
    except OSError:
        return None


def _forecast(port: int, served_model: str) -> float:
    """The median forecast of one request (raises on any answer but 200)."""
    body = json.dumps(
        {"requests": [{"served_model": served_model, "device": "h100", "input_tokens": 9}]}
    ).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/forecasts",
        data=body,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        (forecast,) = json.loads(r.read())["forecasts"]
    return float(forecast["quantiles"]["0.5"])


@pytest.mark.slow
def test_run_serves_fallbacks_at_once_then_swaps_in_searched_champions(tmp_path: Path) -> None:
    """Ready on fallback champions (v1, kind fallback) before any search; forecasts keep
    answering 200 while the first searched champion is trained and, if it wins, swapped in."""
    port = _free_port()
    env = clean_env(TAILCAST_HOME=str(tmp_path), TAILCAST_PORT=str(port))
    proc = subprocess.Popen(
        [str(TAILCAST), "run", "--records", "3000", "--trials", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    url = f"http://127.0.0.1:{port}/readyz"
    try:
        deadline = time.monotonic() + 300
        ready = None
        while time.monotonic() < deadline and proc.poll() is None and ready is None:
            ready = _get(url)
            time.sleep(0.5)
        assert ready is not None, "the API never became ready"
        models = ready["models"]
        assert models
        assert all(m["loaded_version"] == 1 and m["kind"] == "fallback" for m in models.values())
        assert not any("searched v" in line for line in lines)  # ready before any search
        first = sorted(models)[0]
        answered = 0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            assert _forecast(port, first) > 0  # every forecast answers 200 meanwhile
            answered += 1
            if any(f"{first}: searched v" in line for line in lines):
                break
            time.sleep(0.2)
        verdict = next(line for line in lines if f"{first}: searched v" in line)
        if "promoted to champion" in verdict:  # the poller swaps it in
            while time.monotonic() < deadline:
                now = _get(url)
                if now is not None and now["models"][first]["kind"] == "trained":
                    break
                assert _forecast(port, first) > 0
                time.sleep(0.5)
            assert now is not None
            assert now["models"][first]["loaded_version"] == 2
        assert answered > 0
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=30)
    out = "".join(lines)
    assert "registered fallback v1 as champion" in out
    assert "serving on" in out
