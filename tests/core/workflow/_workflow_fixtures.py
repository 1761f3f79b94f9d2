"""A small hand-built workflow model (no training): shared by the workflow tests."""

from __future__ import annotations

import numpy as np

from core.predictor import Predictor, PredictorSpec
from core.workflow import WorkflowModel, WorkflowSpec

M = 12  # calls the call-count law covers


def tiny_predictor() -> Predictor:
    """Latency grows with the step: log seconds = 0.3 log1p(step) + (-0.5, 0, 0.5)."""
    spec = PredictorSpec(
        served_models=("m",),
        numeric=("log_step",),
        devices=("d",),
        hidden=(),
        levels=(0.1, 0.5, 0.9),
    )
    arrays = {
        "num_mean": np.array([0.0]),
        "num_std": np.array([1.0]),
        "head_W": np.array([[0.3, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
        # quantile head: first output, then softplus increments: log(e^x - 1) gives 0.5
        "head_b": np.array([-0.5, np.log(np.expm1(0.5)), np.log(np.expm1(0.5))]),
    }
    return Predictor(spec, arrays)


def tiny_model(rho: float = 0.3, dim: int = 4) -> WorkflowModel:
    """Three training runs of 4, 6 and 10 calls, two tool kinds, served model ``m``.

    ``dim``: width of the text embeddings (384 for the real encoder).
    """
    kernels = np.zeros((3, M))
    kernels[[0, 1, 2], [3, 5, 9]] = 1.0
    spec = WorkflowSpec(
        served_models=("m",),
        run_served_models=("m", "m", "other"),
        k=1,
        shrink=0.5,
        boost=2.0,
        rho=rho,
        tool_kinds=("python",),
    )
    arrays: dict[str, np.ndarray] = {
        "count_embeddings": np.eye(3, dim, dtype=np.float32),
        "count_kernels": kernels,
        "tool_pooled": np.linspace(0.1, 0.3, 20),
        "tool_python": np.linspace(2.0, 6.0, 20),
        "profile_m": np.tile([1000.0, 500.0], (M, 1)),
        "pit_map": np.linspace(0.0, 1.0, 11),
    }
    return WorkflowModel(spec, arrays, tiny_predictor())
