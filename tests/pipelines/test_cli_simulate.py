"""`tailcast simulate` end to end on a slice of the real Azure trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

TAILCAST = Path(sys.executable).parent / "tailcast"
ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
KEYS = {"p50", "p95", "p99", "slo_attainment", "replica_seconds"}


def tailcast(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TAILCAST_HOME": str(home)}
    return subprocess.run(
        [str(TAILCAST), "simulate", *args], capture_output=True, text=True, env=env, timeout=900
    )


@pytest.fixture
def azure_slice(tmp_path: Path) -> Path:
    src = SHARED / "traces" / "azure_llm_2023_conv.csv"
    assert src.exists(), f"shared data missing: {src}"
    out = tmp_path / "azure_slice.csv"
    with src.open() as f:
        out.write_text("".join(next(f) for _ in range(601)))
    return out


def run_json(trace: Path, home: Path, *extra: str) -> dict[str, Any]:
    base = ["--trace", str(trace), "--format", "azure", "--cluster", "a100:2,h100:1"]
    out = tailcast(*base, "--load", "0.8", "--seed", "0", "--json", *extra, home=home)
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.mark.shared_data
@pytest.mark.slow
def test_simulate_prints_latency_slo_and_cost(azure_slice: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    po2 = run_json(azure_slice, home, "--router", "po2", "--plot", str(tmp_path / "po2.png"))
    assert set(po2) >= KEYS
    assert 0 < po2["p50"] <= po2["p95"] <= po2["p99"]
    assert 0.0 <= po2["slo_attainment"] <= 1.0
    assert po2["requests"] == 360  # 600 rows, the first 40% train
    assert (tmp_path / "po2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = run_json(azure_slice, home, "--router", "po2")
    assert again["p95"] == po2["p95"]  # same seed, same result
    oracle = run_json(azure_slice, home, "--router", "oracle")
    assert oracle["p95"] < po2["p95"]
    tail = run_json(azure_slice, home, "--router", "tail_aware", "--trials", "1")
    assert set(tail) >= KEYS
    assert tail["p95"] < po2["p95"]
    assert Path(tail["plot"]).exists()
    scaled = run_json(azure_slice, home, "--router", "least_loaded", "--scaler", "utilization")
    assert scaled["replica_seconds"] != po2["replica_seconds"]


@pytest.mark.shared_data
def test_simulate_names_bad_input(azure_slice: Path, tmp_path: Path) -> None:
    args = ["--trace", str(azure_slice), "--format", "azure"]
    out = tailcast(*args, "--cluster", "a100:2", "--router", "fastest", home=tmp_path)
    assert out.returncode == 2
    assert "--router 'fastest'" in out.stderr
    assert "tail_aware" in out.stderr
    out = tailcast(*args, "--cluster", "a100=2", "--router", "po2", home=tmp_path)
    assert out.returncode == 2
    assert "bad cluster part 'a100=2'" in out.stderr
    out = tailcast(*args, "--cluster", "tpu:2", "--router", "po2", home=tmp_path)
    assert out.returncode == 2
    assert "no measurements for device 'tpu'" in out.stderr
