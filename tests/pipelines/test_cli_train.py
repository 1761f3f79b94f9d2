"""`tailcast train` / `evaluate` / `models` end to end: real store, real MLflow (SQLite)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # mypy maps tests/pipelines/*.py to top-level modules (no __init__.py)
    from _cli import tailcast
else:
    from tests.pipelines._cli import tailcast


def as_json(out: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def train(home: Path, *extra: str) -> dict[str, Any]:
    """`tailcast train` of the demo's 8B model, 2 trials, JSON result."""
    args = ["--served-model", "llama-3.1-8b", "--trials", "2", "--timeout", "120", *extra]
    return as_json(tailcast("train", *args, "--json", home=home))


@pytest.mark.slow
def test_train_registers_promotes_and_evaluates(tmp_path: Path) -> None:
    demo = tmp_path / "demo.parquet"
    assert (
        tailcast(
            "demo-data", "--out", str(demo), "--records", "4000", "--seed", "3", home=tmp_path
        ).returncode
        == 0
    )
    assert tailcast("ingest", str(demo), home=tmp_path).returncode == 0

    first = train(tmp_path)
    assert (first["version"], first["promoted"], first["champion_before"]) == (1, True, None)
    assert set(first["models"]) == {"tailcast", "empirical", "swarmpilot_mlp", "gbdt"}
    assert first["metrics"]["prediction_us"] > 0
    for name in ("reliability.png", "pit_histogram.png", "pareto_front.png", "comparison.png"):
        assert (Path(first["run_dir"]) / name).stat().st_size > 1000

    second = train(tmp_path, "--seed", "1", "--cross-fit", "0")
    assert second["version"] == 2
    assert second["champion_before"] == 1
    # Promoted exactly when it beat the champion on the same held-out records.
    assert second["promoted"] == (
        second["metrics"]["mean_pinball"] < second["champion_mean_pinball"]
    )

    listed = as_json(tailcast("models", "list", "--json", home=tmp_path))
    text = json.dumps(listed)
    assert "champion" in text
    assert "challenger" in text

    scored = as_json(
        tailcast(
            "evaluate",
            "--served-model",
            "llama-3.1-8b",
            "--data",
            str(demo),
            "--json",
            home=tmp_path,
        )
    )
    assert scored["quantiles"] == [0.1, 0.5, 0.9, 0.95, 0.99]
    assert set(scored["models"]) == {"tailcast", "empirical", "swarmpilot_mlp", "gbdt"}
    assert scored["models"]["tailcast"]["mean_pinball"] > 0


def test_train_unknown_served_model_is_a_clear_error(tmp_path: Path) -> None:
    out = tailcast("train", "--served-model", "nope", "--trials", "1", home=tmp_path)
    assert out.returncode == 2
    assert "nope" in out.stderr
