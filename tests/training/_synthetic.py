"""Synthetic training data and a fast configuration shared by the training tests."""

from __future__ import annotations

import numpy as np

from training import TrainConfig, TrainingData


def synthetic(n: int = 3000, seed: int = 0) -> TrainingData:
    """Latency = lognormal around a median set by input tokens and a word in the prompt."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(10, 4000, n).astype(float)
    slow = rng.random(n) < 0.3
    prompts = np.array(
        [
            ("explain in detail " if s else "answer briefly ") + f"task {i % 97}"
            for i, s in enumerate(slow)
        ],
        dtype=object,
    )
    median = 0.5 + tokens / 1000 + 3.0 * slow
    y = median * np.exp(0.3 * rng.standard_normal(n))
    cols = {
        "request_id": np.array([f"r{i}" for i in range(n)], dtype=object),
        "workflow_id": np.array([f"run/w{i // 5}" for i in range(n)], dtype=object),
        "served_model": np.array(["m"] * n, dtype=object),
        "device": np.array(["h100"] * n, dtype=object),
        "input_tokens": tokens,
        "prompt": prompts,
    }
    return TrainingData(cols=cols, y=y)


FAST = TrainConfig(
    hidden=(16,), max_epochs=15, patience=5, batch_size=256, lr=1e-2, numeric=("log_input_tokens",)
)
