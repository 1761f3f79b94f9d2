"""Measured prediction cost: what one request costs the hot path, text included."""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from core.predictor import Predictor
from training._data import I64, TrainingData


def prediction_cost_us(
    predictor: Predictor, data: TrainingData, rows: I64, *, repeats: int = 3, limit: int = 100
) -> float:
    """Median microseconds per single-request prediction on this CPU (one thread).

    Each request is predicted alone, as a router calls the hot path: features
    (text included) + network + calibration, through the NumPy runtime.
    """
    from training.text._cost import torch_threads

    with torch_threads(1):
        sample = rows[:limit]
        singles: list[dict[str, Any]] = [data.rows(np.array([i])) for i in sample]
        predictor.predict(singles[0], 1)  # warm-up (lazy loads)
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            for cols in singles:
                predictor.predict(cols, 1)
            timings.append((time.perf_counter() - started) / len(singles))
    return statistics.median(timings) * 1e6


def batched_throughput(predictor: Predictor, data: TrainingData, rows: I64) -> float:
    """Requests per second when predicting ``rows`` in one in-process batch."""
    cols = data.rows(rows)
    predictor.predict(cols, len(rows))
    started = time.perf_counter()
    predictor.predict(cols, len(rows))
    return len(rows) / (time.perf_counter() - started)
