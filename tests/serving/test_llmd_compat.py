"""llm-d's latency-predictor contract against the real service over real HTTP.

One tailcast process plays both llm-d roles: training data goes in on
``/add_training_data_bulk``, the background retrain loop (the one ``tailcast serve``
runs) trains TTFT and TPOT predictors in a child process and registers them in a real
MLflow registry, the poller swaps them in, and ``/predict``, ``/predict/bulk``,
``/predict/bulk/strict``, ``/status`` and ``/reload`` answer in llm-d's shapes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from core import Settings
from pipelines.llmd import LlmdRetrainConfig, LlmdRetrainer
from serving import create_app

if TYPE_CHECKING:  # mypy maps tests/serving/*.py to top-level modules (no __init__.py)
    from _fixtures import TOKEN, running
else:
    from tests.serving._fixtures import TOKEN, running

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SAMPLES = 400
TRAIN_TIMEOUT_S = 420.0
PREDICTION_FIELDS = {
    "ttft_ms",
    "tpot_ms",
    "predicted_at",
    "model_type",
    "objective_type",
    "quantile",
    "last_model_load",
}


def entries(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """llm-d training entries: TTFT grows with the prompt, the queue and the prefill tokens
    in flight, TPOT with load and the decode tokens in flight."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        tokens = int(rng.integers(50, 4000))
        waiting = int(rng.integers(0, 8))
        running_ = int(rng.integers(0, 32))
        prefill, decode = int(rng.integers(0, 10_000)), int(rng.integers(0, 3_000))
        out.append(
            {
                "kv_cache_percentage": float(rng.uniform(0, 1)),
                "input_token_length": tokens,
                "num_request_waiting": waiting,
                "num_request_running": running_,
                "actual_ttft_ms": (10 + 0.1 * tokens + 40 * waiting + 0.05 * prefill)
                * rng.uniform(0.9, 1.1),
                "actual_tpot_ms": (8 + 0.5 * running_ + 0.01 * decode) * rng.uniform(0.9, 1.1),
                "num_tokens_generated": int(rng.integers(1, 500)),
                "prefix_cache_score": float(rng.uniform(0, 1)),
                "pod_type": "",
                "prefill_tokens_in_flight": prefill,
                "decode_tokens_in_flight": decode,
                "timestamp": (start + timedelta(seconds=i)).isoformat(),
            }
        )
    return out


def request(tokens: int = 1000, **fields: Any) -> dict[str, Any]:
    """One llm-d prediction request."""
    return {
        "kv_cache_percentage": 0.4,
        "input_token_length": tokens,
        "num_request_waiting": 0,
        "num_request_running": 4,
        "num_tokens_generated": 0,
        "prefix_cache_score": 0.0,
        **fields,
    }


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    """tailcast with a token and the llm-d retrain loop checking every second."""
    settings = Settings(home=tmp_path, api_token=TOKEN)
    retrainer = LlmdRetrainer(settings, LlmdRetrainConfig(interval_s=1.0, min_samples=SAMPLES))
    with running(create_app(settings, poll_interval_s=3600, hooks=[retrainer])) as url:
        yield url


def wait_ready(http: httpx.Client) -> dict[str, Any]:
    deadline = time.monotonic() + TRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        status: dict[str, Any] = http.get("/status").json()
        if status["is_ready"]:
            return status
        time.sleep(1.0)
    pytest.fail(f"TTFT/TPOT models not ready after {TRAIN_TIMEOUT_S:.0f} s: {status}")


@pytest.mark.slow
def test_llmd_training_data_retrain_and_predictions_over_http(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        # before any model: llm-d's 503 and a not-ready status
        assert http.get("/healthz").json()["status"] == "ok"
        not_ready = http.post("/predict", json=request())
        assert (not_ready.status_code, not_ready.json()) == (503, {"detail": "Models not ready"})
        status = http.get("/status").json()
        assert status["is_ready"] is False
        assert status["models_exist"] == {"ttft_model": False, "tpot_model": False}

        # training data: token required, the whole batch validated, retries idempotent
        batch = {"entries": entries(SAMPLES)}
        assert http.post("/add_training_data_bulk", json=batch).status_code == 401
        bad = {"entries": [*batch["entries"][:2], {**batch["entries"][2], "actual_ttft_ms": -1}]}
        res = http.post("/add_training_data_bulk", json=bad, headers=AUTH)
        assert res.status_code == 422
        assert res.json()["detail"][0]["loc"] == ["body", "entries", 2, "actual_ttft_ms"]
        res = http.post("/add_training_data_bulk", json=batch, headers=AUTH)
        assert res.status_code == 202, res.text
        assert res.json() == {
            "message": f"Accepted {SAMPLES} training samples.",
            "stored": SAMPLES,
            "duplicates": 0,
        }
        again = http.post("/add_training_data_bulk", json=batch, headers=AUTH).json()
        assert (again["stored"], again["duplicates"]) == (0, SAMPLES)

        # the background loop trains, registers and swaps in both models
        status = wait_ready(http)
        assert status["models_exist"] == {"ttft_model": True, "tpot_model": True}
        assert (status["objective_type"], status["quantile"]) == ("quantile", 0.9)
        assert status["last_model_load"] is not None
        assert http.get("/readyz").status_code == 200

        # single
        one = http.post("/predict", json=request(100))
        assert one.status_code == 200, one.text
        small = one.json()
        assert set(small) == PREDICTION_FIELDS
        big = http.post("/predict", json=request(3900, num_request_waiting=6)).json()
        assert 0 < small["ttft_ms"] < big["ttft_ms"]
        assert small["tpot_ms"] > 0
        busy = request(100, prefill_tokens_in_flight=9_000, decode_tokens_in_flight=2_800)
        loaded = http.post("/predict", json=busy).json()  # the in-flight tokens are features
        assert loaded["ttft_ms"] > small["ttft_ms"]
        assert loaded["tpot_ms"] > small["tpot_ms"]

        # strict bulk: all or nothing
        items = [request(200), request(2000, pod_type="prefill"), request(3000)]
        strict = http.post("/predict/bulk/strict", json={"requests": items})
        assert strict.status_code == 200, strict.text
        out = strict.json()
        assert (out["total_requests"], out["successful_predictions"]) == (3, 3)
        assert out["failed_predictions"] == 0
        assert out["processing_time_ms"] >= 0
        assert [set(p) for p in out["predictions"]] == [PREDICTION_FIELDS] * 3
        invalid = [items[0], {**items[1], "kv_cache_percentage": 1.5}, items[2]]
        res = http.post("/predict/bulk/strict", json={"requests": invalid})
        assert res.status_code == 422
        assert res.json()["detail"][0]["loc"] == ["body", "requests", 1, "kv_cache_percentage"]

        # lenient bulk: llm-d's 422, with the valid ones answered in place
        res = http.post("/predict/bulk", json={"requests": invalid})
        assert res.status_code == 422, res.text
        lenient = res.json()
        assert [d["loc"] for d in lenient["detail"]] == [
            ["body", "requests", 1, "kv_cache_percentage"]
        ]
        assert lenient["predictions"][1] is None
        assert lenient["predictions"][0]["ttft_ms"] == out["predictions"][0]["ttft_ms"]
        assert (lenient["successful_predictions"], lenient["failed_predictions"]) == (2, 1)
        (error,) = lenient["errors"]
        assert error["index"] == 1
        assert "kv_cache_percentage" in error["error"]
        assert error["request"] == invalid[1]
        assert http.post("/predict/bulk", json={"requests": []}).status_code == 422

        # reload: admin, nothing new to load
        assert http.post("/reload").status_code == 401
        reload = http.post("/reload", headers=AUTH)
        assert reload.status_code == 200, reload.text
        body = reload.json()
        assert (body["synced"], body["loaded"], body["is_ready"]) == (True, False, True)
