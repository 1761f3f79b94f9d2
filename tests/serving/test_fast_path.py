"""The ASGI fast path of ``POST /v1/forecasts`` behaves like the FastAPI route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from serving import ServingConfig, create_app

if TYPE_CHECKING:  # mypy maps tests/serving/*.py to top-level modules (no __init__.py)
    from _fixtures import SERVED, new_registry, register, request, settings
else:
    from tests.serving._fixtures import SERVED, new_registry, register, request, settings


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    registry = new_registry(tmp_path / "registry")
    register(registry, SERVED)
    app = create_app(
        settings(tmp_path, registry),
        registry=registry,
        config=ServingConfig(max_body_bytes=2_000),
    )
    with TestClient(app) as c:
        yield c


def test_fast_path_answers_records_metrics_and_rejects_like_the_route(
    client: TestClient,
) -> None:
    ok = client.post("/v1/forecasts", json={"requests": [request(input_tokens=10)]})
    assert ok.status_code == 200
    assert ok.headers["content-type"] == "application/json"
    assert ok.json()["forecasts"][0]["model_version"] == 1
    bad = client.post("/v1/forecasts", json={"requests": [request(input_tokens=-1)]})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "requests", 0, "input_tokens"]
    unknown = client.post("/v1/forecasts", json={"requests": [request("nope")]})
    assert unknown.status_code == 404
    assert "known: chat" in unknown.json()["detail"]
    huge = client.post("/v1/forecasts", content=b"x" * 3_000)
    assert (huge.status_code, huge.text) == (413, "Content Too Large")
    assert client.get("/v1/forecasts").status_code == 405  # other methods: the router
    metrics = client.get("/metrics").text
    line = 'tailcast_http_requests_total{endpoint="/v1/forecasts",method="POST",status="200"} 1.0'
    assert line in metrics
    assert 'endpoint="/v1/forecasts",method="POST",status="422"' in metrics
