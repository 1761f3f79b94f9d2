"""`tailcast models list` and `tailcast models promote`, through the console script."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from core import Settings
from core.predictor import Predictor, PredictorSpec
from registry import MLflowRegistry

if TYPE_CHECKING:  # mypy maps tests/pipelines/*.py to top-level modules (no __init__.py)
    from _cli import tailcast
else:
    from tests.pipelines._cli import tailcast


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tailcast home whose registry holds tailcast-m v1 (challenger, mean_pinball 0.25)."""
    home = tmp_path_factory.mktemp("home")
    rng = np.random.default_rng(0)
    spec = PredictorSpec(
        numeric=("log_input_tokens",),
        devices=("h100",),
        served_models=("m",),
        hidden=(4,),
        levels=(0.1, 0.5, 0.9),
    )
    arrays = {
        "num_mean": np.zeros(1),
        "num_std": np.ones(1),
        "layer0_W": rng.normal(size=(3, 4)),
        "layer0_b": rng.normal(size=4),
        "head_W": rng.normal(size=(4, 3)),
        "head_b": rng.normal(size=3),
    }
    uri = Settings(home=home, cwd=home).mlflow_tracking_uri
    assert uri is not None
    MLflowRegistry(uri).log_training(
        "m",
        Predictor(spec, arrays),
        params={"trials": 1},
        metrics={"mean_pinball": 0.25},
        artifacts={},
        input_example=pd.DataFrame({"served_model": ["m"], "input_tokens": [100]}),
    )
    return home


def test_list_shows_the_registered_version(home: Path) -> None:
    res = tailcast("models", "list", "--json", home=home, cwd=home)
    assert res.returncode == 0, res.stderr
    versions = json.loads(res.stdout)["versions"]
    assert [(v["name"], v["served_model"], v["version"]) for v in versions] == [
        ("tailcast-m", "m", 1)
    ]
    assert "challenger" in versions[0]["aliases"]
    assert versions[0]["mean_pinball"] == 0.25
    table = tailcast("models", "list", "--served-model", "m", home=home, cwd=home)
    assert table.returncode == 0, table.stderr
    assert "challenger" in table.stderr
    assert "0.2500" in table.stderr
    none = tailcast("models", "list", "--served-model", "nope", "--json", home=home, cwd=home)
    assert json.loads(none.stdout)["versions"] == []


def test_promote_sets_champion(home: Path) -> None:
    res = tailcast(
        "models", "promote", "--served-model", "m", "--version", "1", "--json", home=home
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert (doc["name"], doc["version"], doc["alias"]) == ("tailcast-m", 1, "champion")
    assert doc["aliases"] == ["challenger", "champion"]
    listed = json.loads(tailcast("models", "list", "--json", home=home, cwd=home).stdout)[
        "versions"
    ]
    assert listed[0]["aliases"] == ["challenger", "champion"]


def test_promote_unknown_version_or_model_exits_2(home: Path) -> None:
    res = tailcast(
        "models", "promote", "--served-model", "m", "--version", "42", home=home, cwd=home
    )
    assert res.returncode == 2
    assert "tailcast-m has no version 42" in res.stderr
    res = tailcast(
        "models", "promote", "--served-model", "ghost", "--version", "1", home=home, cwd=home
    )
    assert res.returncode == 2
    assert "no registered model tailcast-ghost" in res.stderr


def test_list_and_help_fit_80_columns(home: Path) -> None:
    """At 80 columns nothing is cut: no line is wider, no cell ends in an ellipsis."""
    table = tailcast("models", "list", home=home, cwd=home, COLUMNS="80")
    assert table.returncode == 0, table.stderr
    lines = table.stderr.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert "…" not in table.stderr
    row = next(line for line in lines if "challenger" in line or "champion" in line)
    assert "0.2500" in row
    assert " 1 " in row
    for command in ((), ("serve",), ("simulate",), ("models", "list"), ("pipeline", "retrain")):
        res = tailcast(*command, "--help", home=home, cwd=home, COLUMNS="80")
        assert res.returncode == 0, res.stderr
        assert "…" not in res.stdout, command
        assert max(len(line) for line in res.stdout.splitlines()) <= 80, command
