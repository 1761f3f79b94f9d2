"""Helpers of the serving tests: a tiny real predictor in a real SQLite MLflow registry.

Imported explicitly by the test modules (the repo has one conftest.py only).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import uvicorn
from fastapi import FastAPI

from core import CompletionRecord, Settings
from core.predictor import Predictor, PredictorSpec
from pipelines.retrain import STATIC_FEATURES, RetrainConfig
from registry import MLflowRegistry, ModelVersion

SERVED = "chat"
OTHER = "code"
DEVICE = "h100-sxm"
LEVELS = (0.05, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
NUMERIC = ("log_input_tokens", "log_num_running", "has_endpoint_history")
TOKEN = "s3cret-token"
#: A drift retraining in seconds: one trial, no text, static features, one fit, promoted.
QUICK_RETRAIN = RetrainConfig(
    trials=1,
    text_kinds=("none",),
    numeric=STATIC_FEATURES,
    timeout_s=180,
    policy="always",
    cross_fit=0,
)


def tiny_predictor(served_model: str, seed: int = 0) -> Predictor:
    """A small real predictor: 3 numeric features, one device, one served model."""
    rng = np.random.default_rng(seed)
    spec = PredictorSpec(
        served_models=(served_model,),
        numeric=NUMERIC,
        devices=(DEVICE,),
        hidden=(8,),
        levels=LEVELS,
    )
    d_tab = len(NUMERIC) + 1 + 1  # numeric + device one-hot + served-model one-hot
    arrays = {
        "num_mean": np.array([6.0, 1.0, 0.5]),
        "num_std": np.array([1.5, 1.0, 0.5]),
        "layer0_W": rng.normal(size=(d_tab, 8)),
        "layer0_b": rng.normal(size=8),
        "head_W": rng.normal(size=(8, len(LEVELS))) * 0.2,
        "head_b": np.array([0.0, *[-0.5] * (len(LEVELS) - 1)]),
    }
    return Predictor(spec, arrays)


def new_registry(root: Path) -> MLflowRegistry:
    """A real MLflow registry on SQLite under ``root`` (artifacts in root/mlartifacts)."""
    return MLflowRegistry(f"sqlite:///{root / 'mlflow.db'}")


def register(
    registry: MLflowRegistry, served_model: str, *, seed: int = 0, promote: bool = True
) -> ModelVersion:
    """Log a tiny predictor for ``served_model`` and (by default) make it the champion."""
    version = registry.log_training(
        served_model,
        tiny_predictor(served_model, seed),
        params={"hidden": (8,), "seed": seed},
        metrics={"mean_pinball": 0.25},
        artifacts={},
        input_example=pd.DataFrame(
            {"served_model": [served_model], "device": [DEVICE], "input_tokens": [100]}
        ),
    )
    return registry.promote(served_model, version.version) if promote else version


def settings(
    home: Path, registry: MLflowRegistry | None = None, token: str | None = None
) -> Settings:
    """Settings under ``home`` (store there), pointing at ``registry`` when given."""
    return Settings(
        home=home,
        mlflow_tracking_uri=None if registry is None else registry.tracking_uri,
        api_token=token,
    )


def request(served_model: str = SERVED, **fields: Any) -> dict[str, Any]:
    """One forecast request item."""
    return {"served_model": served_model, "device": DEVICE, **fields}


def completion(request_id: str, **fields: Any) -> dict[str, Any]:
    """One valid completion record (override or add fields)."""
    return {
        "request_id": request_id,
        "served_model": SERVED,
        "device": DEVICE,
        "submitted_at": "2026-01-01T12:00:00Z",
        "input_tokens": 800,
        "output_tokens": 200,
        "latency_s": 4.0,
        **fields,
    }


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(app: FastAPI, start_timeout_s: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with real uvicorn on loopback in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    if thread.is_alive():
        raise RuntimeError("uvicorn did not shut down")


def agentic_records(path: Path, served_model: str, tmp: Path) -> list[CompletionRecord]:
    """Every completed call of ``served_model`` in the agentic calls file, by submission."""
    from feature_store import DuckDBStore
    from feature_store.importers import get_importer

    with DuckDBStore(tmp / "scratch.duckdb") as scratch:
        scratch.ingest_batches(get_importer("minisweagent").read(path))
        frame = scratch.training_frame(served_model)
    fields = set(CompletionRecord.model_fields)
    rows = [{k: v for k, v in r.items() if k in fields} for r in frame.to_pylist()]
    return [CompletionRecord.model_validate(r) for r in rows]


def wait_until(check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    """Poll ``check`` every 20 ms until it returns something truthy; that value.

    Raises:
        AssertionError: Not within ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return result
