"""llm-d's functional suite, endpoint by endpoint, against one real tailcast service.

Each test reproduces the requests of one or more tests of llm-d's
``tests/test_dual_server_client.py`` (llm-d/llm-d-latency-predictor), named in its
docstring, with both of llm-d's server URLs pointing at one tailcast service: tiny
real TTFT/TPOT champions in a real SQLite MLflow registry, a real DuckDB store, real
uvicorn on loopback, real HTTP. Retraining is not exercised here (see
test_llmd_compat.py); the model-quality tests of llm-d's suite have no mirror.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.predictor import Predictor
from registry import MLflowRegistry
from serving import create_app

if TYPE_CHECKING:  # mypy maps tests/serving/*.py to top-level modules (no __init__.py)
    from _fixtures import TOKEN, running, settings, tiny_predictor
    from test_llmd_routes import TPOT, TTFT, llmd_champions
else:
    from tests.serving._fixtures import TOKEN, running, settings, tiny_predictor
    from tests.serving.test_llmd_routes import TPOT, TTFT, llmd_champions

FAMILIES = ("bayesian_ridge", "xgboost", "lightgbm")


def features(**fields: Any) -> dict[str, Any]:
    """llm-d's usual prediction request (its suite's first example)."""
    base = {
        "kv_cache_percentage": 0.5,
        "input_token_length": 200,
        "num_request_waiting": 4,
        "num_request_running": 1,
        "num_tokens_generated": 4,
        "prefix_cache_score": 0.7,
    }
    return {**base, **fields}


def entries(n: int, seed: int, **fields: Any) -> list[dict[str, Any]]:
    """llm-d training entries like its ``generate_random_training_payload``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        tokens, waiting = int(rng.integers(10, 1000)), int(rng.integers(0, 20))
        out.append(
            {
                **features(input_token_length=tokens, num_request_waiting=waiting),
                "num_tokens_generated": int(rng.integers(1, 20)),
                "actual_ttft_ms": tokens * 2.0 + waiting * 3.0 + 95 + float(rng.uniform(-10, 10)),
                "actual_tpot_ms": tokens * 0.5 + 9 + float(rng.uniform(-5, 5)),
                "prefill_tokens_in_flight": int(rng.integers(0, 15000)),
                "decode_tokens_in_flight": int(rng.integers(0, 5000)),
                **fields,
            }
        )
    return out


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> MLflowRegistry:
    """llm-d.ttft v1 (seed 3) and llm-d.tpot v1 (seed 4), both champions."""
    return llmd_champions(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="module")
def http(
    registry: MLflowRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """One service without a token (as llm-d's suite calls it) for the whole module."""
    home = tmp_path_factory.mktemp("home")
    app = create_app(settings(home, registry), registry=registry, served_models=[TTFT, TPOT])
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def test_health_and_readiness(http: httpx.Client) -> None:
    """Mirrors test_prediction_server_healthz/readyz and test_training_server_healthz/readyz."""
    assert http.get("/healthz").json()["status"] == "ok"
    ready = http.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")


def test_status_names_a_model_family_llmd_knows(http: httpx.Client) -> None:
    """Mirrors test_prediction_server_status and test_model_consistency_between_servers."""
    status = http.get("/status").json()
    assert status["model_type"] in FAMILIES
    assert status["objective_type"] in ("quantile", "mean")
    assert 0 < status["quantile"] <= 1.0
    assert status["is_ready"] is True
    assert status["ensemble_active"] is False
    info = http.get("/model/download/info")
    assert info.status_code == 200
    assert info.json()["model_type"] == status["model_type"]
    assert "available_endpoints" in info.json()


def test_models_list_names_every_llmd_model(http: httpx.Client) -> None:
    """Mirrors test_training_server_models_list."""
    body = http.get("/models/list").json()
    assert {"models", "model_type", "server_time"} <= set(body)
    models = body["models"]
    assert set(models) == {"ttft", "tpot", "ttft_scaler", "tpot_scaler", "ttft_gated", "tpot_gated"}
    assert models["ttft"]["exists"]
    assert models["tpot"]["exists"]
    assert models["ttft"]["size_bytes"] > 0
    assert models["ttft_gated"] == {"exists": False, "size_bytes": 0, "last_modified": None}


def test_model_info_and_download_are_the_champions_bundle(
    http: httpx.Client, tmp_path: Path
) -> None:
    """Mirrors test_model_download_from_training_server (and llm-d's sync of /model/*/info)."""
    for name, served, seed in (("ttft", TTFT, 3), ("tpot", TPOT, 4)):
        info = http.get(f"/model/{name}/info").json()
        assert (info["exists"], info["model_name"]) == (True, name)
        assert info["last_modified"] is not None
        download = http.get(f"/model/{name}/download")
        assert download.status_code == 200
        assert len(download.content) == info["size_bytes"] > 0
        with tarfile.open(fileobj=io.BytesIO(download.content), mode="r:gz") as tar:
            tar.extractall(tmp_path / name, filter="data")
        loaded = Predictor.load(tmp_path / name)
        cols = {"served_model": [served], "device": ["monolithic"], "input_tokens": [300]}
        expected = tiny_predictor(served, seed).predict(cols, 1)
        np.testing.assert_allclose(loaded.predict(cols, 1), expected)
    for name in ("ttft_scaler", "tpot_gated", "nope"):
        assert http.get(f"/model/{name}/info").status_code == 404
        assert http.get(f"/model/{name}/download").status_code == 404


def test_family_specific_dumps_are_404(http: httpx.Client) -> None:
    """Mirrors test_lightgbm_endpoints_on_training_server and
    test_model_specific_endpoints_on_training_server (a non-200 is llm-d's "not available").
    """
    for path in ("ttft/lgb/txt", "tpot/lgb/txt", "ttft/lgb/importances", "ttft/xgb/json"):
        res = http.get(f"/model/{path}")
        assert res.status_code == 404
        assert "tailcast" in res.json()["detail"]


def test_export_bundles_both_champions(http: httpx.Client) -> None:
    """Mirrors llm-d's GET /model/export (its suite has no test of it)."""
    res = http.get("/model/export")
    assert (res.status_code, res.headers["content-type"]) == (200, "application/gzip")
    with tarfile.open(fileobj=io.BytesIO(res.content), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["metadata.json", "tpot.tar.gz", "ttft.tar.gz"]


def test_training_data_is_accepted_in_every_shape(http: httpx.Client) -> None:
    """Mirrors test_add_training_data_to_training_server, test_training_data_with_pod_type,
    test_training_data_with_token_in_flight_features and
    test_training_data_backward_compat_without_tif.
    """
    prefill = entries(10, 1, pod_type="prefill", num_tokens_generated=0, actual_tpot_ms=0.0)
    no_tif = [{k: v for k, v in e.items() if not k.endswith("_in_flight")} for e in entries(2, 2)]
    for batch in (entries(50, 0), prefill + entries(10, 3, pod_type="decode"), no_tif):
        res = http.post("/add_training_data_bulk", json={"entries": batch})
        assert res.status_code == 202, res.text
        assert res.json()["message"] == f"Accepted {len(batch)} training samples."
    bad = http.post("/add_training_data_bulk", json={"entries": entries(1, 4, actual_ttft_ms=-1)})
    assert bad.status_code == 422


def test_reload_reports_ready(http: httpx.Client) -> None:
    """Mirrors test_prediction_server_model_sync."""
    body = http.post("/reload").json()
    assert (body["synced"], body["is_ready"]) == (True, True)


def test_single_predictions(http: httpx.Client) -> None:
    """Mirrors test_prediction_via_prediction_server, test_prediction_with_pod_type_prefill/
    decode, test_prediction_noqueue_routing, test_invalid_pod_type,
    test_prediction_with_token_in_flight_features and test_token_in_flight_field_defaults_to_zero.
    """
    fields = {
        "ttft_ms",
        "tpot_ms",
        "predicted_at",
        "model_type",
        "objective_type",
        "last_model_load",
    }
    for extra in (
        {},
        {"pod_type": "prefill", "num_tokens_generated": 0},
        {"pod_type": "decode", "num_tokens_generated": 10},
        {"num_request_waiting": 0},
        {"pod_type": "invalid_type"},
        {"prefill_tokens_in_flight": 5000, "decode_tokens_in_flight": 1200},
        {"prefill_tokens_in_flight": 0, "decode_tokens_in_flight": 0},
    ):
        res = http.post("/predict", json=features(**extra))
        assert res.status_code == 200, res.text
        assert fields <= set(res.json())
        assert res.json()["ttft_ms"] > 0
        assert res.json()["tpot_ms"] > 0


def test_invalid_single_predictions_are_422(http: httpx.Client) -> None:
    """Mirrors test_prediction_missing_prefix_cache_score and
    test_token_in_flight_negative_rejected.
    """
    missing = {k: v for k, v in features().items() if k != "prefix_cache_score"}
    for body in (missing, features(prefill_tokens_in_flight=-1)):
        assert http.post("/predict", json=body).status_code == 422


def test_strict_bulk_predictions(http: httpx.Client) -> None:
    """Mirrors test_bulk_prediction_strict, test_bulk_prediction_with_pod_type,
    test_bulk_prediction_mixed_queue, test_bulk_prediction_with_token_in_flight_features
    and test_backward_compat_without_token_in_flight_features.
    """
    items = [
        features(pod_type="prefill", num_tokens_generated=0),
        features(pod_type="decode", num_request_waiting=0),
        features(prefill_tokens_in_flight=12000, decode_tokens_in_flight=3500),
    ]
    res = http.post("/predict/bulk/strict", json={"requests": items})
    assert res.status_code == 200, res.text
    body = res.json()
    assert (body["total_requests"], body["successful_predictions"]) == (3, 3)
    assert (body["failed_predictions"], len(body["predictions"])) == (0, 3)
    assert body["processing_time_ms"] >= 0
    for p in body["predictions"]:
        assert {"ttft_ms", "tpot_ms", "predicted_at", "model_type", "quantile"} <= set(p)
        assert p["ttft_ms"] > 0
        assert p["tpot_ms"] > 0


def test_lenient_bulk_is_422_with_detail_and_keeps_the_valid_answers(http: httpx.Client) -> None:
    """Mirrors test_bulk_prediction_with_validation_errors and test_bulk_prediction_all_valid."""
    valid = [features(), features(kv_cache_percentage=0.3, input_token_length=150)]
    res = http.post("/predict/bulk", json={"requests": valid})
    assert res.status_code == 200
    assert (res.json()["successful_predictions"], res.json()["failed_predictions"]) == (2, 0)
    missing = {k: v for k, v in valid[1].items() if k != "prefix_cache_score"}
    res = http.post("/predict/bulk", json={"requests": [valid[0], missing]})
    assert res.status_code == 422
    body = res.json()
    assert [d["loc"] for d in body["detail"]] == [["body", "requests", 1, "prefix_cache_score"]]
    assert body["predictions"][1] is None
    assert body["predictions"][0]["ttft_ms"] == pytest.approx(
        http.post("/predict", json=valid[0]).json()["ttft_ms"]
    )
    assert (body["successful_predictions"], body["failed_predictions"]) == (1, 1)


def test_metrics_carry_llmd_lines_and_stay_parseable(http: httpx.Client) -> None:
    """Mirrors test_training_server_metrics."""
    text = http.get("/metrics").text
    for needle in (
        "model_type{",
        "ttft_importance{",
        'feature="prefix_cache_score"',
        "training_samples_count",
        "ensemble_active{}",
        "ensemble_mode{}",
        "tailcast_http_requests_total",
    ):
        assert needle in text
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"model_type", "training_samples_count", "tailcast_http_requests"} <= names


def test_root_answers_for_both_servers(http: httpx.Client) -> None:
    """Mirrors test_server_configuration."""
    body = http.get("/").json()
    assert body["model_type"] in FAMILIES
    assert {"message", "objective_type", "is_ready", "sync_interval", "quantile"} <= set(body)


def test_flush_and_data_status(http: httpx.Client) -> None:
    """Mirrors test_training_server_flush_api."""
    status = http.get("/data/status").json()
    assert {"ensemble_mode", "ensemble_active"} <= set(status["ensemble"])
    assert (
        http.post("/add_training_data_bulk", json={"entries": entries(100, 10)}).status_code == 202
    )
    status = http.get("/data/status").json()
    train, test = status["training_data"], status["test_data"]
    assert train["total_samples"] + test["total_samples"] > 0
    assert test["ttft_samples"] < train["ttft_samples"]  # ~10 % test, by hash
    only_train = {"flush_training_data": True, "flush_test_data": False, "flush_metrics": False}
    body = http.post("/flush", json={**only_train, "reason": "r1"}).json()
    assert (body["success"], body["metrics_cleared"], body["reason"]) == (True, False, "r1")
    assert body["ttft_training_samples_flushed"] == train["ttft_samples"]
    assert (body["ttft_test_samples_flushed"], body["tpot_test_samples_flushed"]) == (0, 0)
    after = http.get("/data/status").json()
    assert after["training_data"]["total_samples"] == 0
    assert after["test_data"] == test
    assert (
        http.post("/add_training_data_bulk", json={"entries": entries(50, 11)}).status_code == 202
    )
    body = http.post("/flush").json()  # no body: everything
    assert (body["success"], body["metrics_cleared"]) == (True, True)
    assert "Successfully flushed" in body["message"]
    after = http.get("/data/status").json()
    assert after["training_data"]["total_samples"] == after["test_data"]["total_samples"] == 0
    http.post("/add_training_data_bulk", json={"entries": entries(50, 12)})
    only_test = {"flush_training_data": False, "flush_test_data": True, "flush_metrics": False}
    assert http.post("/flush", json=only_test).status_code == 200
    after = http.get("/data/status").json()
    assert after["test_data"]["total_samples"] == 0
    assert after["training_data"]["total_samples"] > 0


def test_flush_validation(http: httpx.Client) -> None:
    """Mirrors test_training_server_flush_error_handling."""
    bad = http.post(
        "/flush",
        content=b'{"flush_training_data": "not_a_boolean"}',
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 422
    metrics_only = {"flush_training_data": False, "flush_test_data": False, "flush_metrics": True}
    body = http.post("/flush", json=metrics_only).json()
    assert body["metrics_cleared"] is True
    assert (body["ttft_training_samples_flushed"], body["tpot_training_samples_flushed"]) == (0, 0)


def test_flush_needs_the_token_when_one_is_set(registry: MLflowRegistry, tmp_path: Path) -> None:
    """Mirrors no upstream test: tailcast's writes are admin calls once a token is set."""
    app = create_app(
        settings(tmp_path, registry, token=TOKEN), registry=registry, served_models=[TTFT]
    )
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/flush").status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert client.post("/flush", headers=auth).status_code == 200
        assert client.get("/model/export").status_code == 503  # TPOT not loaded
