"""``POST /v1/forecasts/workflow``: real uvicorn on loopback, a workflow bundle under home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi.testclient import TestClient

from serving import create_app

if TYPE_CHECKING:  # mypy maps test directories to top-level modules (no __init__.py)
    from _fixtures import new_registry, running, settings
    from _workflow_fixtures import M, tiny_model
else:
    from tests.core.workflow._workflow_fixtures import M, tiny_model
    from tests.serving._fixtures import new_registry, running, settings

TASK = "Fix the off-by-one error in the pagination helper; add a regression test."


def body(**fields: Any) -> dict[str, Any]:
    return {"task_text": TASK, "served_model": "m", "device": "d", **fields}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    tiny_model(dim=384).save(tmp_path / "workflows" / "v0002")
    return tmp_path


@pytest.fixture
def base_url(home: Path) -> Iterator[str]:
    registry = new_registry(home)
    with running(create_app(settings(home, registry), registry=registry)) as url:
        yield url


@pytest.mark.slow
def test_workflow_forecast_over_real_http(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as http:
        start = http.post("/v1/forecasts/workflow", json=body(quantiles=[0.1, 0.5, 0.9]))
        assert start.status_code == 200, start.text
        first = start.json()
        assert first["workflow_version"] == 2
        assert first["samples"] == 1000
        counts = list(first["call_count"]["quantiles"].values())
        assert counts == sorted(counts)
        assert 1 <= counts[0] <= counts[-1] <= M
        assert first["total_s"] == first["remaining_s"]  # not started: all of it remains
        # the same question twice: the same answer (common random numbers)
        again = http.post("/v1/forecasts/workflow", json=body(quantiles=[0.1, 0.5, 0.9]))
        assert again.json() == first

        late = http.post(
            "/v1/forecasts/workflow",
            json=body(steps_done=7, elapsed_s=100.0, pending_command="cd /t && python -m pytest"),
        ).json()
        assert late["call_count"]["quantiles"]["0.1"] >= 8
        for level, remaining in late["remaining_s"]["quantiles"].items():
            assert late["total_s"]["quantiles"][level] == pytest.approx(100.0 + remaining)
        # the history of the returned calls is accepted (the tiny bundle has no wrap-up)
        history = body(steps_done=2, commands=["ls", None], latencies_s=[1.5, None])
        answer = http.post("/v1/forecasts/workflow", json=history)
        assert answer.status_code == 200, answer.text

        unknown = http.post("/v1/forecasts/workflow", json=body(served_model="gpt-x"))
        assert unknown.status_code == 404
        assert "known: m" in unknown.json()["detail"]


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"steps_done": -1}, ["body", "steps_done"]),
        ({"quantiles": [0.5, 1.0]}, ["body", "quantiles", 1]),
        ({"task_text": ""}, ["body", "task_text"]),
        ({"elapsed_s": 5.0}, ["body"]),
        ({"steps_done": 10_000}, ["body", "steps_done"]),
        ({"steps_done": 1, "commands": ["ls", "git diff"]}, ["body"]),
        ({"steps_done": 2, "latencies_s": [1.0, -2.0]}, ["body", "latencies_s", 1]),
    ],
)
def test_bad_bodies_are_422_with_the_field_path(
    home: Path, fields: dict[str, Any], loc: list[Any]
) -> None:
    registry = new_registry(home)
    with TestClient(create_app(settings(home, registry), registry=registry)) as client:
        response = client.post("/v1/forecasts/workflow", json=body(**fields))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


def test_without_a_bundle_the_route_is_503(tmp_path: Path) -> None:
    registry = new_registry(tmp_path)
    with TestClient(create_app(settings(tmp_path, registry), registry=registry)) as client:
        response = client.post("/v1/forecasts/workflow", json=body())
    assert response.status_code == 503
    assert "tailcast train-workflows" in response.json()["detail"]
