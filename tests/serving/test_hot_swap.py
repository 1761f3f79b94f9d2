"""A new champion is picked up by the background poller and swapped in under load."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from registry import MLflowRegistry
from serving import create_app

if TYPE_CHECKING:  # mypy maps tests/serving/*.py to top-level modules (no __init__.py)
    from _fixtures import SERVED, new_registry, register, request, settings
else:
    from tests.serving._fixtures import SERVED, new_registry, register, request, settings

SWAP_TIMEOUT_S = 20.0


@pytest.fixture
def registry(tmp_path: Path) -> MLflowRegistry:
    reg = new_registry(tmp_path / "registry")
    register(reg, SERVED, seed=0)
    return reg


def test_champion_swap_under_load_fails_no_request(
    registry: MLflowRegistry, tmp_path: Path
) -> None:
    app = create_app(settings(tmp_path, registry), registry=registry, poll_interval_s=0.2)
    seen: list[tuple[int, frozenset[int]]] = []  # (status, model versions) in request order
    stop = threading.Event()

    with TestClient(app) as client:

        def load() -> None:
            body = {"requests": [request(input_tokens=100), request(input_tokens=9000)]}
            while not stop.is_set():
                res = client.post("/v1/forecasts", json=body)
                forecasts = res.json()["forecasts"] if res.status_code == 200 else []
                seen.append((res.status_code, frozenset(f["model_version"] for f in forecasts)))

        worker = threading.Thread(target=load)
        worker.start()
        try:
            v2 = register(registry, SERVED, seed=1)
            assert v2.version == 2
            deadline = time.monotonic() + SWAP_TIMEOUT_S
            while time.monotonic() < deadline:
                (model,) = client.get("/v1/models").json()["models"]
                if model["loaded_version"] == 2:
                    break
                time.sleep(0.05)
            else:
                pytest.fail(f"v2 not loaded within {SWAP_TIMEOUT_S} s: {model}")
            swapped_at, deadline = len(seen), time.monotonic() + 10
            while len(seen) < swapped_at + 5 and worker.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)  # a few more forecasts after the swap
        finally:
            stop.set()
            worker.join(timeout=10)

        assert model["aliases"]["champion"] == 2
        metrics = client.get("/metrics").text

    assert len(seen) > 10, f"the load generator made only {len(seen)} requests"
    assert all(status == 200 for status, _ in seen), [s for s in seen if s[0] != 200]
    assert all(len(v) == 1 for _, v in seen)  # one model version answers a whole call
    versions = [min(v) for _, v in seen]
    assert versions[0] == 1
    assert versions[-1] == 2
    assert versions == sorted(versions)  # never back to v1 once v2 answered
    assert 'tailcast_model_version_info{served_model="chat",version="2"} 1.0' in metrics
    assert (
        'version="1"' not in metrics.split("tailcast_model_version_info", 1)[1].split("# HELP")[0]
    )
    assert 'tailcast_model_swaps_total{served_model="chat"} 1.0' in metrics
