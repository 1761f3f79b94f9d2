"""`tailcast demo-data` and `tailcast run` (what `make run` executes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TAILCAST = Path(sys.executable).parent / "tailcast"


def tailcast(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TAILCAST_HOME": str(home)}
    return subprocess.run(
        [str(TAILCAST), *args], capture_output=True, text=True, env=env, timeout=300
    )


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
