"""`tailcast evaluate-workflows` and `train-workflows` end to end on real agentic task runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from core.workflow import WorkflowModel, bundle_versions
from training.workflow import TASKS_FILE, write_subset

if TYPE_CHECKING:  # mypy maps tests/pipelines/*.py to top-level modules (no __init__.py)
    from _cli import tailcast
else:
    from tests.pipelines._cli import tailcast

AGENTIC = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "agentic"


def workflows_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``tailcast *args`` with wide output (tables unwrapped) and 15 minutes at most."""
    return tailcast(*args, home=home, timeout=900.0, COLUMNS="400")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A train DIR of 24 instances and a test DIR of 6 others (subsets of the shared data)."""
    assert AGENTIC.is_dir(), f"shared data missing: {AGENTIC}"
    ids = sorted(set(pd.read_csv(AGENTIC / TASKS_FILE, usecols=["instance_id"])["instance_id"]))
    root = tmp_path_factory.mktemp("agentic")
    train = write_subset(AGENTIC, root / "train", set(ids[:48:2]))
    test = write_subset(AGENTIC, root / "test", set(ids[1:13:2]))
    return train, test


@pytest.mark.slow
@pytest.mark.shared_data
def test_evaluate_workflows_json(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    train, test = dirs
    args = ["--train", str(train), "--test", str(test), "--trials", "1", "--timeout", "60"]
    out = workflows_cli("evaluate-workflows", *args, "--samples", "400", "--json", home=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    comp = result["composition"]
    assert set(comp) == {"distributional", "sum_of_means", "sum_of_p90"}
    for name in comp:
        assert 0.0 <= comp[name]["coverage"]["0.9"] <= 1.0
        assert comp[name]["mean_pinball"] > 0
    counts = result["call_count"]
    assert counts["tailcast"]["mean_pinball"] > 0
    assert counts["empirical"]["mean_pinball"] > 0
    assert result["tasks"] == len(pd.read_csv(test / TASKS_FILE))
    assert result["samples"] == 400
    assert result["remaining"]["steps_done"][0] == 0.0


@pytest.mark.slow
@pytest.mark.shared_data
def test_train_workflows_publishes_a_loadable_bundle(
    dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    train, _ = dirs
    out = workflows_cli(
        "train-workflows", "--data", str(train), "--trials", "1", "--json", home=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["version"] == 1
    [(version, path)] = bundle_versions(tmp_path)
    model = WorkflowModel.load(path)
    assert version == 1
    assert model.spec.metadata["version"] == "1"
    assert "deepseek-chat" in model.spec.served_models


def test_bad_dirs_name_the_file(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    train, _ = dirs
    out = workflows_cli(
        "evaluate-workflows", "--train", str(train), "--test", str(tmp_path), home=tmp_path
    )
    assert out.returncode == 2
    assert "minisweagent_calls.csv.gz: no such file" in " ".join(out.stderr.split())
    same = workflows_cli(
        "evaluate-workflows", "--train", str(train), "--test", str(train), home=tmp_path
    )
    assert same.returncode == 2
    assert "held-out tasks must be new" in " ".join(same.stderr.split())
