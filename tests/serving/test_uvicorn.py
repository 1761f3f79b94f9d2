"""The real service under uvicorn on loopback, driven over HTTP with httpx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from core import Settings
from registry import MLflowRegistry
from serving import create_app

if TYPE_CHECKING:  # mypy maps tests/serving/*.py to top-level modules (no __init__.py)
    from _fixtures import SERVED, TOKEN, completion, register, request, running
else:
    from tests.serving._fixtures import SERVED, TOKEN, completion, register, request, running


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    """The service on 127.0.0.1 with a champion in the registry its settings name."""
    settings = Settings(home=tmp_path, api_token=TOKEN)
    assert settings.mlflow_tracking_uri is not None
    register(MLflowRegistry(settings.mlflow_tracking_uri), SERVED)
    with running(create_app(settings)) as url:
        yield url


@pytest.mark.slow
def test_forecast_and_completion_over_real_http(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        assert http.get("/readyz").status_code == 200
        res = http.post(
            "/v1/forecasts",
            json={"requests": [request(request_id="q1", input_tokens=500)], "cdf_at": [10]},
        )
        assert res.status_code == 200, res.text
        (f,) = res.json()["forecasts"]
        assert (f["request_id"], f["served_model"], f["model_version"]) == ("q1", SERVED, 1)
        assert f["quantiles"]["0.5"] <= f["quantiles"]["0.99"]
        assert 0.0 <= f["cdf"]["10"] <= 1.0

        body = {"completions": [completion("q1"), completion("q2", latency_s=0)]}
        assert http.post("/v1/completions", json=body).status_code == 401
        stored = http.post(
            "/v1/completions", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert stored.status_code == 200, stored.text
        out = stored.json()
        assert (out["accepted"], out["duplicates"]) == (1, 0)
        assert [(r["index"], r["field"]) for r in out["rejected"]] == [(1, "latency_s")]
        assert "tailcast_forecasts_total" in http.get("/metrics").text
