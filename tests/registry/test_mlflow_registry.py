"""Contract of the MLflow registry, against an embedded SQLite registry and a real
``mlflow server`` backed by PostgreSQL (proxied artifacts under the test's tmp dir).

Every test registers its own served model, so the backends are shared per module.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from core.predictor import Predictor, PredictorSpec
from registry import CHALLENGER, CHAMPION, MLflowRegistry, RegistryError, registered_name

if TYPE_CHECKING:  # mypy maps tests/<pkg>/*.py to top-level modules (no __init__.py)
    from _server import mlflow_server
else:
    from tests.registry._server import mlflow_server

PostgresDatabase = Any  # the conftest fixture: a context manager factory
LEVELS = (0.1, 0.5, 0.9)
QUANTILES = ["q0.1", "q0.5", "q0.9"]


@dataclass(frozen=True)
class Backend:
    kind: str
    tracking_uri: str
    artifacts: Path  # where this backend's artifacts must land


# --- backends -------------------------------------------------------------------------
@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param("server-postgres", marks=[pytest.mark.postgres, pytest.mark.slow]),
    ],
)
def backend(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_database: PostgresDatabase,
) -> Iterator[Backend]:
    root = tmp_path_factory.mktemp(str(request.param))
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{root / 'mlflow.db'}", root / "mlartifacts")
        return
    with postgres_database() as db, mlflow_server(db, root) as uri:
        yield Backend("server-postgres", uri, root / "artifacts")


@pytest.fixture
def registry(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MLflowRegistry:
    # Stray artifacts (MLflow's default ./mlruns) would land here, not in the repo.
    monkeypatch.chdir(tmp_path)
    return MLflowRegistry(backend.tracking_uri)


@pytest.fixture
def served() -> str:
    """A served-model name of its own for every test."""
    return f"m-{uuid.uuid4().hex[:8]}"


# --- a tiny real predictor ----------------------------------------------------------------
def tiny_predictor(served_model: str, seed: int = 0) -> Predictor:
    rng = np.random.default_rng(seed)
    spec = PredictorSpec(
        numeric=("log_input_tokens",),
        devices=("h100",),
        served_models=(served_model,),
        hidden=(4,),
        levels=LEVELS,
        projection=0,
    )
    d_tab = 1 + 1 + 1  # numeric + devices + served models
    arrays = {
        "num_mean": np.array([6.0]),
        "num_std": np.array([1.5]),
        "layer0_W": rng.normal(size=(d_tab, 4)),
        "layer0_b": rng.normal(size=4),
        "head_W": rng.normal(size=(4, 3)),
        "head_b": rng.normal(size=3),
    }
    return Predictor(spec, arrays)


def requests(served_model: str) -> dict[str, list[Any]]:
    """Request columns as plain lists: unknown device, missing values, int tokens."""
    return {
        "served_model": [served_model, served_model, "other", served_model],
        "device": ["h100", "a100", "h100", None],
        "prompt": ["hello there", None, "", "why"],
        "input_tokens": [120, 4000, 15, None],
        "cached_tokens": [0, None, 5, 7],
    }


def log(
    registry: MLflowRegistry, served: str, tmp_path: Path, seed: int = 0, pinball: float = 0.25
) -> tuple[Predictor, Any]:
    predictor = tiny_predictor(served, seed)
    plots = tmp_path / f"plots-{seed}"
    plots.mkdir()
    for name in ("reliability.png", "pit_histogram.png"):
        (plots / name).write_bytes(b"\x89PNG\r\n\x1a\n not really")
    version = registry.log_training(
        served,
        predictor,
        params={"hidden": (4,), "trials": 3, "seed": seed},
        metrics={"mean_pinball": pinball, "coverage_90": 0.9},
        artifacts={p.stem: p for p in sorted(plots.iterdir())},
        input_example=pd.DataFrame(requests(served)),
        tags={"trained_as_of": "2026-01-01T00:00:00+00:00"},
    )
    return predictor, version


# --- the contract -------------------------------------------------------------------------
def test_aliases_follow_training_and_promotion(
    registry: MLflowRegistry, served: str, tmp_path: Path
) -> None:
    name = registered_name(served)
    _, v1 = log(registry, served, tmp_path, seed=0)
    assert (v1.name, v1.version, v1.aliases) == (name, 1, (CHALLENGER,))
    assert registry.alias_version(served, CHAMPION) is None
    assert registry.alias_version(served, CHALLENGER) == v1

    promoted = registry.promote(served, 1)
    assert promoted.aliases == (CHALLENGER, CHAMPION)
    assert registry.alias_version(served) == promoted

    _, v2 = log(registry, served, tmp_path, seed=1, pinball=0.2)
    assert (v2.version, v2.aliases, v2.mean_pinball) == (2, (CHALLENGER,), 0.2)
    champion = registry.alias_version(served, CHAMPION)
    assert champion is not None
    assert champion.version == 1
    assert champion.aliases == (CHAMPION,)  # the challenger alias moved to v2

    listed = registry.list_versions(served)
    assert [(v.version, v.aliases) for v in listed] == [(1, (CHAMPION,)), (2, (CHALLENGER,))]
    everything = registry.list_versions()  # other tests' models too
    assert all(v.name.startswith("tailcast-") for v in everything)
    assert set(listed) <= set(everything)

    registry.promote(served, 2)
    assert [v.aliases for v in registry.list_versions(served)] == [(), (CHALLENGER, CHAMPION)]


def test_loaded_predictor_and_pyfunc_predict_like_the_original(
    registry: MLflowRegistry, served: str, tmp_path: Path
) -> None:
    original, version = log(registry, served, tmp_path)
    registry.promote(served, version.version)
    cols = requests(served)
    expected = original.predict(cols, 4)

    loaded, mv = registry.load(served, alias=CHAMPION, cache_dir=tmp_path / "cache")
    assert mv.version == version.version
    assert CHAMPION in mv.aliases
    assert loaded.spec == original.spec
    np.testing.assert_allclose(loaded.predict(cols, 4), expected, rtol=1e-12)
    by_number, _ = registry.load(served, version=version.version)
    np.testing.assert_allclose(by_number.predict(cols, 4), expected, rtol=1e-12)

    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_registry_uri(registry.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{registered_name(served)}@champion")
    out = model.predict(pd.DataFrame(cols))
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == QUANTILES
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-12)
    # Every request column is optional: a frame with only some of them is accepted.
    partial = model.predict(pd.DataFrame({"input_tokens": [120, 4000]}))
    np.testing.assert_allclose(
        partial.to_numpy(), original.predict({"input_tokens": [120, 4000]}, 2), rtol=1e-12
    )


def test_run_logs_params_metrics_tags_and_plots(
    registry: MLflowRegistry, served: str, tmp_path: Path, backend: Backend
) -> None:
    _, version = log(registry, served, tmp_path, pinball=0.125)
    assert version.mean_pinball == 0.125
    assert version.run_id is not None
    client = MlflowClient(registry.tracking_uri)
    run = client.get_run(version.run_id)
    assert run.data.metrics == {"mean_pinball": 0.125, "coverage_90": 0.9}
    assert run.data.params == {"hidden": "(4,)", "trials": "3", "seed": "0"}
    assert run.data.tags["served_model"] == served
    assert run.data.tags["trained_as_of"] == "2026-01-01T00:00:00+00:00"
    assert client.get_experiment(run.info.experiment_id).name == "tailcast"
    plots = {Path(f.path).name for f in client.list_artifacts(version.run_id, "plots")}
    assert plots == {"reliability.png", "pit_histogram.png"}
    # Artifacts land where the backend keeps them, never in ./mlruns.
    assert any(p.name == "reliability.png" for p in backend.artifacts.rglob("*.png"))
    assert any(p.name == "spec.json" for p in backend.artifacts.rglob("spec.json"))
    assert not (tmp_path / "mlruns").exists()


def test_unknown_models_versions_and_aliases(
    registry: MLflowRegistry, served: str, tmp_path: Path
) -> None:
    name = registered_name(served)
    with pytest.raises(RegistryError, match=f"no registered model {name}"):
        registry.version(served, 1)
    with pytest.raises(RegistryError, match=f"{name}"):
        registry.promote(served, 1)
    assert registry.alias_version(served) is None
    assert registry.list_versions(served) == []
    with pytest.raises(RegistryError, match="'champion'"):
        registry.load(served)

    log(registry, served, tmp_path)
    with pytest.raises(RegistryError, match=f"{name} has no version 7"):
        registry.version(served, 7)
    with pytest.raises(RegistryError, match="has no version 7"):
        registry.promote(served, 7)
    with pytest.raises(RegistryError, match="has no version 7"):
        registry.load(served, version=7)
    with pytest.raises(RegistryError, match="'champion'"):
        registry.load(served)  # registered, but never promoted
    with pytest.raises(RegistryError, match="reserved"):
        registry.promote(served, 1, alias="v3")  # MLflow reserves v<N> and latest
