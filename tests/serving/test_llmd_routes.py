"""llm-d endpoints with real tiny TTFT/TPOT predictors in a real SQLite registry.

Checks the field mapping exactly (the answer equals the predictor's own quantile),
batch limits, the 503 before models exist, and how training entries are stored.
(The end-to-end loop with retraining over real HTTP is in test_llmd_compat.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.predictor import Predictor
from core.quantiles import ppf_rows
from registry import MLflowRegistry, ModelVersion
from serving import ServingConfig, create_app
from serving._models import LoadedModel
from serving._state import ServiceState
from serving.compat._files import ModelFile, ModelFiles

if TYPE_CHECKING:  # mypy maps tests/serving/*.py to top-level modules (no __init__.py)
    from _fixtures import TOKEN, new_registry, register, settings, tiny_predictor
else:
    from tests.serving._fixtures import TOKEN, new_registry, register, settings, tiny_predictor

TTFT, TPOT = "llm-d.ttft", "llm-d.tpot"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def request(**fields: Any) -> dict[str, Any]:
    return {
        "kv_cache_percentage": 0.25,
        "input_token_length": 800,
        "num_request_waiting": 2,
        "num_request_running": 5,
        "num_tokens_generated": 0,
        "prefix_cache_score": 0.5,
        **fields,
    }


def entry(**fields: Any) -> dict[str, Any]:
    return {
        **request(num_tokens_generated=100),
        "actual_ttft_ms": 120.0,
        "actual_tpot_ms": 15.0,
        "timestamp": "2026-01-01T00:00:00Z",
        **fields,
    }


def llmd_champions(root: Path) -> MLflowRegistry:
    """A registry under ``root`` with llm-d.ttft v1 (seed 3) and llm-d.tpot v1 (seed 4)."""
    reg = new_registry(root)
    register(reg, TTFT, seed=3)
    register(reg, TPOT, seed=4)
    return reg


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> MLflowRegistry:
    """llm-d.ttft v1 and llm-d.tpot v1, both champions."""
    return llmd_champions(tmp_path_factory.mktemp("registry"))


def make_client(registry: MLflowRegistry, home: Path, served: list[str]) -> TestClient:
    app = create_app(
        settings(home, registry, token=TOKEN),
        registry=registry,
        served_models=served,
        config=ServingConfig(max_batch_items=4),
    )
    return TestClient(app)


@pytest.fixture
def client(registry: MLflowRegistry, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(registry, tmp_path, [TTFT, TPOT]) as c:
        yield c


def test_predict_answers_each_predictors_quantile_in_ms(client: TestClient) -> None:
    res = client.post("/predict", json=request(pod_type="prefill"))
    assert res.status_code == 200, res.text
    body = res.json()
    assert (body["model_type"], body["objective_type"], body["quantile"]) == (
        "lightgbm",
        "quantile",
        0.9,
    )
    assert datetime.fromisoformat(body["predicted_at"]).tzinfo is not None
    cols = {
        "served_model": ["llm-d"],
        "device": ["prefill"],
        "input_tokens": [800],
        "cached_tokens": [400],
        "num_running": [5],
        "num_waiting": [2],
        "kv_cache_util": [0.25],
        "ep_completions": [0],
        "ep_median_tokens_per_s": [None],
        "ep_median_latency_s": [None],
    }
    for name, field in ((TTFT, "ttft_ms"), (TPOT, "tpot_ms")):
        predictor = tiny_predictor(name, seed=3 if name == TTFT else 4)
        values = np.maximum(predictor.predict(cols, 1), 0.0)
        grid = np.asarray(predictor.spec.levels)
        expected = ppf_rows(grid, values, np.array([0.9]), lower=0.0)[0, 0] * 1000
        assert body[field] == pytest.approx(expected, rel=1e-9)


def test_bulk_routes_answer_in_order_and_enforce_the_batch_limit(client: TestClient) -> None:
    items = [request(input_token_length=t) for t in (10, 500, 3000)]
    single = [client.post("/predict", json=i).json()["ttft_ms"] for i in items]
    strict = client.post("/predict/bulk/strict", json={"requests": items}).json()
    assert [p["ttft_ms"] for p in strict["predictions"]] == pytest.approx(single)
    too_many = {"requests": [request()] * 5}
    for path in ("/predict/bulk/strict", "/predict/bulk"):
        res = client.post(path, json=too_many)
        assert res.status_code == 413
        assert "limit is 4" in res.json()["detail"]
    res = client.post("/predict", json={k: v for k, v in request().items() if k != "pod_type"})
    assert res.status_code == 200
    missing = client.post("/predict", json={"kv_cache_percentage": 0.1})
    assert missing.status_code == 422
    assert ["body", "input_token_length"] in [e["loc"] for e in missing.json()["detail"]]


def test_training_entries_are_stored_as_records_of_the_llmd_served_model(
    client: TestClient,
) -> None:
    busy = {"prefill_tokens_in_flight": 5000, "decode_tokens_in_flight": 300}
    batch = {"entries": [entry(**busy), entry(pod_type="decode", num_tokens_generated=0)]}
    assert client.post("/add_training_data_bulk", json=batch).status_code == 401
    res = client.post("/add_training_data_bulk", json=batch, headers=AUTH)
    assert res.status_code == 202, res.text
    assert (res.json()["stored"], res.json()["duplicates"]) == (2, 0)
    too_many = {"entries": [entry(input_token_length=i) for i in range(5)]}
    assert client.post("/add_training_data_bulk", json=too_many, headers=AUTH).status_code == 413
    state: ServiceState = client.app.state.service  # type: ignore[attr-defined]
    frame = state.store.training_frame("llm-d", require=("ttft_s",)).to_pylist()
    rows = sorted(frame, key=lambda r: r["device"])
    assert [r["device"] for r in rows] == ["decode", "monolithic"]
    decode, mono = rows
    assert mono["ttft_s"] == pytest.approx(0.12)
    assert mono["latency_s"] == pytest.approx(0.12 + 0.015 * 100)
    assert (mono["cached_tokens"], mono["output_tokens"], mono["num_waiting"]) == (400, 100, 2)
    assert mono["submitted_at"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert (mono["prefill_tokens_in_flight"], mono["decode_tokens_in_flight"]) == (5000, 300)
    assert (decode["prefill_tokens_in_flight"], decode["decode_tokens_in_flight"]) == (0, 0)
    assert decode["output_tokens"] == 0
    assert decode["latency_s"] == pytest.approx(0.12)


def test_without_ttft_and_tpot_models_predict_is_503_and_status_not_ready(
    registry: MLflowRegistry, tmp_path: Path
) -> None:
    with make_client(registry, tmp_path, [TTFT]) as client:  # TPOT never loaded
        res = client.post("/predict", json=request())
        assert (res.status_code, res.json()) == (503, {"detail": "Models not ready"})
        res = client.post("/predict/bulk", json={"requests": [request()]})
        assert res.status_code == 503
        status = client.get("/status").json()
        assert status["is_ready"] is False
        assert status["models_exist"] == {"ttft_model": True, "tpot_model": False}
        assert client.get("/readyz").json()["quantile"] == 0.9


def _model_file(width: int, seed: int, version: int) -> ModelFile:
    base = tiny_predictor(TTFT, seed)
    rng = np.random.default_rng(seed)
    d_tab = base.arrays["layer0_W"].shape[0]
    arrays = {
        **base.arrays,
        "layer0_W": rng.normal(size=(d_tab, width)),
        "layer0_b": rng.normal(size=width),
        "head_W": rng.normal(size=(width, len(base.spec.levels))),
    }
    predictor = Predictor(base.spec.model_copy(update={"hidden": (width,)}), arrays)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    made = ModelVersion(name=TTFT, version=version, aliases=(), run_id=None, created_at=at)
    return ModelFiles().file(LoadedModel(TTFT, predictor, made, at))


def test_a_model_file_grows_with_the_network_and_only_with_it() -> None:
    same = {_model_file(8, seed, seed).info("ttft")["size_bytes"] for seed in range(5)}
    assert len(same) == 1  # retrains of one shape: one size, whatever the weights
    assert _model_file(16, 0, 9).info("ttft")["size_bytes"] > same.pop()
