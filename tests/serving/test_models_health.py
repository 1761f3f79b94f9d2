"""``/v1/models``, ``/healthz``, ``/readyz``, ``/metrics`` and registry outages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from core import Settings
from registry import MLflowRegistry
from serving import create_app

if TYPE_CHECKING:  # mypy maps tests/serving/*.py to top-level modules (no __init__.py)
    from _fixtures import (
        LEVELS,
        SERVED,
        TOKEN,
        completion,
        new_registry,
        register,
        request,
        settings,
    )
else:
    from tests.serving._fixtures import (
        LEVELS,
        SERVED,
        TOKEN,
        completion,
        new_registry,
        register,
        request,
        settings,
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> MLflowRegistry:
    reg = new_registry(tmp_path_factory.mktemp("registry"))
    register(reg, SERVED)
    return reg


@pytest.fixture
def client(registry: MLflowRegistry, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings(tmp_path, registry), registry=registry)) as c:
        yield c


def test_healthz_docs_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "service": "tailcast"}
    assert client.get("/docs").status_code == 200
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    assert {"/v1/forecasts", "/v1/completions", "/v1/models", "/readyz", "/metrics"} <= set(paths)
    assert {"/predict", "/predict/bulk", "/predict/bulk/strict", "/reload", "/status"} <= set(paths)
    # bodies of the lean routes are documented and their references resolve
    body = paths["/v1/forecasts"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/ForecastsRequest"
    schemas = doc["components"]["schemas"]
    assert {"ForecastsRequest", "ForecastRequest", "PredictionRequest", "TrainingEntry"} <= set(
        schemas
    )


def test_models_lists_loaded_version_load_time_and_aliases(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    assert body["registry_error"] is None
    (model,) = [m for m in body["models"] if m["served_model"] == SERVED]
    assert model["registered_name"] == f"tailcast-{SERVED}"
    assert model["loaded_version"] == 1
    assert model["loaded_at"] is not None
    assert model["target"] == "latency_s"
    assert model["levels"] == list(LEVELS)
    assert model["aliases"] == {"challenger": 1, "champion": 1}
    assert [v["version"] for v in model["versions"]] == [1]
    assert model["versions"][0]["mean_pinball"] == 0.25
    assert model["last_error"] is None


def test_readyz_is_503_until_a_champion_is_loaded(registry: MLflowRegistry, tmp_path: Path) -> None:
    register(registry, "late", promote=False)
    app = create_app(
        settings(tmp_path, registry, token=TOKEN), registry=registry, served_models=["late"]
    )
    with TestClient(app) as client:
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503
        body = not_ready.json()
        assert body["status"] == "not_ready"
        assert body["models"]["late"]["loaded_version"] is None
        assert "no 'champion' alias" in body["models"]["late"]["last_error"]
        assert body["registry"]["reachable"] is True
        assert client.post("/v1/forecasts", json={"requests": [request("late")]}).status_code == 404

        registry.promote("late", 1)
        assert client.post("/v1/models/reload").status_code == 401  # admin: token required
        reloaded = client.post("/v1/models/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert reloaded.status_code == 200
        (late,) = reloaded.json()["models"]
        assert (late["served_model"], late["loaded_version"]) == ("late", 1)

        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["models"]["late"]["loaded_version"] == 1
        assert ready.json()["models"]["late"]["last_error"] is None
        f = client.post("/v1/forecasts", json={"requests": [request("late")]}).json()
        assert f["forecasts"][0]["model_version"] == 1


def test_served_models_are_discovered_from_the_registry(client: TestClient) -> None:
    models = client.get("/readyz").json()["models"]
    assert models[SERVED]["loaded_version"] == 1


def test_metrics_count_requests_forecasts_completions_and_versions(client: TestClient) -> None:
    client.post("/v1/forecasts", json={"requests": [request(), request()]})
    client.post("/v1/completions", json={"completions": [completion("m1"), {"bad": 1}]})
    client.get("/nowhere")
    text = client.get("/metrics").text
    assert 'tailcast_forecasts_total{served_model="chat"} 2.0' in text
    assert "tailcast_completions_accepted_total 1.0" in text
    assert "tailcast_completions_rejected_total 1.0" in text
    assert 'tailcast_model_version_info{served_model="chat",version="1"} 1.0' in text
    assert "tailcast_registry_errors_total 0.0" in text
    assert "tailcast_registry_up 1.0" in text
    assert (
        'tailcast_http_request_duration_seconds_count{endpoint="/v1/forecasts",method="POST"} 1.0'
        in text
    )
    assert (
        'tailcast_http_requests_total{endpoint="unmatched",method="GET",status="404"} 1.0' in text
    )


def test_an_unreachable_registry_keeps_the_last_good_model_serving(
    client: TestClient, registry: MLflowRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("MLflow registry at http://mlflow:5000: connection refused")

    monkeypatch.setattr(registry, "alias_version", down)
    monkeypatch.setattr(registry, "list_versions", down)
    models = client.post("/v1/models/reload").json()
    assert "connection refused" in models["registry_error"]
    (chat,) = [m for m in models["models"] if m["served_model"] == SERVED]
    assert chat["loaded_version"] == 1
    assert chat["aliases"] == {"challenger": 1, "champion": 1}  # as seen at load time

    ready = client.get("/readyz")
    assert ready.status_code == 200
    registry_state = ready.json()["registry"]
    assert registry_state["reachable"] is False
    assert "connection refused" in registry_state["last_error"]
    assert registry_state["last_error_at"] is not None

    res = client.post("/v1/forecasts", json={"requests": [request()]})
    assert res.status_code == 200
    assert res.json()["forecasts"][0]["model_version"] == 1
    text = client.get("/metrics").text
    assert "tailcast_registry_errors_total 1.0" in text
    assert "tailcast_registry_up 0.0" in text

    monkeypatch.undo()  # the registry is back: the next poll clears "unreachable"
    client.post("/v1/models/reload")
    recovered = client.get("/readyz").json()["registry"]
    assert recovered["reachable"] is True
    assert "connection refused" in recovered["last_error"]  # kept, with its time


def test_a_registry_that_cannot_be_opened_leaves_the_service_up_but_not_ready(
    tmp_path: Path,
) -> None:
    bad = Settings(home=tmp_path, mlflow_tracking_uri="sqlite:////proc/tailcast/mlflow.db")
    with TestClient(create_app(bad)) as client:
        assert client.get("/healthz").status_code == 200
        res = client.get("/readyz")
        assert res.status_code == 503
        assert res.json()["registry"]["reachable"] is False
        assert res.json()["registry"]["last_error"]
        missing = client.post("/v1/forecasts", json={"requests": [request()]})
        assert missing.status_code == 404
        assert "no champion is loaded yet" in missing.json()["detail"]
        assert client.get("/v1/models").json()["registry_error"]
        assert "tailcast_registry_errors_total 1.0" in client.get("/metrics").text


def test_readyz_says_whether_a_fallback_or_a_trained_champion_serves(
    registry: MLflowRegistry, tmp_path: Path
) -> None:
    from training import fallback_predictor

    rows = {"latency_s": [1.0, 2.0, 3.0, 4.0] * 10, "device": ["h100"] * 40}
    version = registry.log_training(
        "early",
        fallback_predictor(rows, "early", min_count=5),
        params={},
        metrics={"mean_pinball": 0.5},
        artifacts={},
        input_example=pd.DataFrame({"served_model": ["early"], "device": ["h100"]}),
        tags={"kind": "fallback"},
    )
    registry.promote("early", version.version)
    app = create_app(
        settings(tmp_path, registry, token=TOKEN), registry=registry, served_models=["early"]
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app) as client:
        early = client.get("/readyz").json()["models"]["early"]
        assert (early["loaded_version"], early["kind"]) == (1, "fallback")
        f = client.post("/v1/forecasts", json={"requests": [request("early", device="h100")]})
        assert f.status_code == 200
        assert 1.0 <= f.json()["forecasts"][0]["quantiles"]["0.5"] <= 4.0
        register(registry, "early")  # a trained version wins the champion alias
        assert client.post("/v1/models/reload", headers=auth).status_code == 200
        early = client.get("/readyz").json()["models"]["early"]
        assert (early["loaded_version"], early["kind"]) == (2, "trained")
