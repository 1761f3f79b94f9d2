"""`tailcast demo-data` and `tailcast run` (what `make run` executes)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

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


@pytest.mark.slow
def test_run_serves_a_ready_api_once_the_first_champion_is_trained(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = clean_env(TAILCAST_HOME=str(tmp_path), TAILCAST_PORT=str(port))
    proc = subprocess.Popen(
        [str(TAILCAST), "run", "--records", "3000", "--trials", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    ready = None
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None and ready is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    ready = json.loads(r.read())
            except OSError:
                time.sleep(1)
        assert ready is not None, "the API never became ready"
        loaded = {name for name, m in ready["models"].items() if m["loaded_version"] == 1}
        assert loaded  # the first served model's champion answers
        body = json.dumps(
            {"requests": [{"served_model": sorted(loaded)[0], "device": "h100", "input_tokens": 9}]}
        ).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/forecasts",
            data=body,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            (forecast,) = json.loads(r.read())["forecasts"]
        assert forecast["quantiles"]["0.5"] > 0
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        out = proc.communicate(timeout=30)[0].decode()
    assert "registered v1 as champion" in out
    assert "serving on" in out
