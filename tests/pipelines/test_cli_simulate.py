"""`tailcast simulate` end to end on a slice of the real Azure trace."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import pytest

from core import InputError

if TYPE_CHECKING:  # mypy maps tests/pipelines/*.py to top-level modules (no __init__.py)
    from _cli import tailcast
else:
    from tests.pipelines._cli import tailcast

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
KEYS = {"p50", "p95", "p99", "slo_attainment", "replica_seconds"}


def simulate_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``tailcast simulate *args`` (15 minutes at most: training included)."""
    return tailcast("simulate", *args, home=home, timeout=900.0)


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
    out = simulate_cli(*base, "--load", "0.8", "--seed", "0", "--json", *extra, home=home)
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
    indep = run_json(azure_slice, home, "--router", "tail_aware", "--percentiles", "independent")
    assert set(indep) >= KEYS  # the other draw mode runs on the cached predictor
    scaled = run_json(azure_slice, home, "--router", "least_loaded", "--scaler", "utilization")
    assert scaled["replica_seconds"] != po2["replica_seconds"]


@pytest.mark.shared_data
def test_simulate_names_bad_input(azure_slice: Path, tmp_path: Path) -> None:
    args = ["--trace", str(azure_slice), "--format", "azure"]
    out = simulate_cli(*args, "--cluster", "a100:2", "--router", "fastest", home=tmp_path)
    assert out.returncode == 2
    assert "--router 'fastest'" in out.stderr
    assert "tail_aware" in out.stderr
    out = simulate_cli(*args, "--cluster", "a100=2", "--router", "po2", home=tmp_path)
    assert out.returncode == 2
    assert "bad cluster part 'a100=2'" in out.stderr
    out = simulate_cli(*args, "--cluster", "tpu:2", "--router", "po2", home=tmp_path)
    assert out.returncode == 2
    assert "no measurements for device 'tpu'" in out.stderr
    out = simulate_cli(*args, "--cluster", "a100:2", "--percentiles", "comonotone", home=tmp_path)
    assert out.returncode == 2
    assert "--percentiles 'comonotone' is not a known mode" in out.stderr
    out = simulate_cli(*args, "--cluster", "a100:2", "--arrivals", "hawkes", home=tmp_path)
    assert out.returncode == 2
    assert "--arrivals 'hawkes' is not a known arrival model" in out.stderr


def test_cli_names_match_the_policies() -> None:
    from pipelines.cli import _simulate as cli
    from scheduler_hooks.routing import ROUTERS
    from scheduler_hooks.routing._tail_aware import Percentiles
    from scheduler_hooks.scaling import SCALERS
    from scheduler_hooks.scaling._forecast import ARRIVAL_MODELS

    assert set(cli.ROUTER_NAMES) == set(ROUTERS)
    assert set(cli.SCALER_NAMES) == set(SCALERS)
    assert get_args(Percentiles) == cli.PERCENTILE_MODES
    assert cli.ARRIVAL_MODELS == ARRIVAL_MODELS


LOSS_KEYS = {"loss_at_s", "pre_loss_p90", "late_p90", "late_over_pre", "alarms", "retrains"}


@pytest.mark.shared_data
@pytest.mark.slow
def test_simulate_capacity_loss_raises_the_late_tail(azure_slice: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    args = ("--router", "least_loaded", "--scaler", "none", "--limit", "200", "--samples", "32")
    plain = run_json(azure_slice, home, *args, "--plot", str(tmp_path / "plain.png"))
    assert not set(plain) & LOSS_KEYS
    for kind in ("degrade", "slow"):
        lost = run_json(
            azure_slice,
            home,
            *args,
            "--loss-at",
            "300",
            "--loss-kind",
            kind,
            "--plot",
            str(tmp_path / f"{kind}.png"),
        )
        assert set(lost) >= KEYS | LOSS_KEYS
        assert lost["loss_at_s"] == 300.0
        assert lost["loss_fraction"] == 0.71
        assert lost["loss_kind"] == kind
        assert lost["requests"] == 200
        assert 0 < lost["pre_loss_p90"] < lost["late_p90"]
        assert lost["late_over_pre"] == pytest.approx(
            lost["late_p90"] / lost["pre_loss_p90"], rel=1e-3
        )
        assert lost["late_over_pre"] > 1.0
        assert lost["p95"] > plain["p95"]
        assert lost["retrains"] == 0  # no --drift-retrain
        assert isinstance(lost["alarms"], int)
        assert lost["alarms"] >= 0
    base = ["--trace", str(azure_slice), "--format", "azure", "--cluster", "a100:2,h100:1"]
    table = simulate_cli(
        *base, *args, "--loss-at", "300", "--plot", str(tmp_path / "t.png"), home=home
    )
    assert table.returncode == 0, table.stderr[-3000:]
    assert "late / pre" in table.stderr
    assert "P95 s" in table.stderr


@pytest.mark.shared_data
def test_simulate_drift_retrain_needs_forecasts(azure_slice: Path, tmp_path: Path) -> None:
    args = ["--trace", str(azure_slice), "--format", "azure", "--cluster", "a100:2"]
    out = simulate_cli(
        *args, "--router", "round_robin", "--scaler", "none", "--drift-retrain", home=tmp_path
    )
    assert out.returncode != 0
    assert "--drift-retrain" in out.stderr
    assert "round_robin" in out.stderr
    assert out.stdout == ""


@pytest.mark.shared_data
def test_simulate_names_bad_loss_options(azure_slice: Path, tmp_path: Path) -> None:
    args = ["--trace", str(azure_slice), "--format", "azure", "--cluster", "a100:2"]
    out = simulate_cli(
        *args, "--router", "po2", "--loss-at", "100", "--loss-devices", "h100", home=tmp_path
    )
    assert out.returncode != 0
    assert "--loss-devices" in out.stderr
    assert "h100 not in the cluster" in out.stderr
    out = simulate_cli(
        *args, "--router", "po2", "--loss-at", "100", "--loss-fraction", "1.5", home=tmp_path
    )
    assert out.returncode != 0
    assert "--loss-fraction" in out.stderr
    out = simulate_cli(*args, "--router", "po2", "--loss-at", "-1", home=tmp_path)
    assert out.returncode != 0
    assert "--loss-at" in out.stderr


@pytest.mark.shared_data
@pytest.mark.slow
def test_simulate_passes_the_arrival_model_to_the_forecast_scaler(
    azure_slice: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    args = ("--router", "least_loaded", "--scaler", "forecast", "--trials", "1")
    poisson = run_json(azure_slice, home, *args, "--arrivals", "poisson")
    renewal = run_json(azure_slice, home, *args, "--arrivals", "renewal")
    assert set(renewal) >= KEYS
    # the option reaches the scaler (make_scaler drops keys a constructor does not take)
    assert (renewal["p95"], renewal["replica_seconds"]) != (
        poisson["p95"],
        poisson["replica_seconds"],
    )


@pytest.mark.shared_data
def test_missing_device_data_is_named(azure_slice: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "splitwise_perf_model.csv"
    args = ["--trace", str(azure_slice), "--format", "azure", "--cluster", "a100:2"]
    out = simulate_cli(*args, "--router", "po2", "--device-data", str(missing), home=tmp_path)
    assert out.returncode == 2
    assert "device measurements not found" in out.stderr
    assert "--device-data" in out.stderr
    # the environment variable is the same setting (the helper strips inherited ones)
    env = tailcast(
        "simulate", *args, "--router", "po2", home=tmp_path, TAILCAST_DEVICE_DATA=str(missing)
    )
    assert env.returncode == 2
    assert "device measurements not found" in env.stderr


@pytest.mark.shared_data
def test_run_takes_a_request_and_returns_a_result(azure_slice: Path, tmp_path: Path) -> None:
    from pipelines import simulate as job

    request = job.SimulationRequest(
        trace=azure_slice,
        fmt="azure",
        cluster="a100:2,h100:1",
        router="po2",
        limit=120,
        samples=16,
        home=tmp_path,
        device_data=job.device_data_path(),
    )
    phases: dict[str, tuple[int, int]] = {}
    result = job.run(request, progress=lambda p, done, total: phases.__setitem__(p, (done, total)))
    assert phases == {"simulate po2": (120, 120)}  # no policy reads forecasts: no training
    assert result.summary["requests"] == 120
    assert 0 < result.summary["p50"] <= result.summary["p95"] <= result.summary["p99"]
    assert result.plot == tmp_path / "simulate" / "azure_slice-po2-none.png"
    assert result.plot.read_bytes()[:4] == b"\x89PNG"
    doc = result.as_json()
    assert set(doc) >= KEYS | {"capacity_rps", "plot", "format", "seconds"}
    assert doc["format"] == "azure"
    again = job.run(request)
    assert again.summary["p95"] == result.summary["p95"]  # same request, same numbers
    with pytest.raises(InputError, match="--scale-device 'tpu' has no measurements"):
        job.run(request.model_copy(update={"scale_device": "tpu"}))
