"""Forecasts for the simulator: a trained service-time predictor, out of fold if need be.

:func:`train_forecaster` trains a predictor of a request's service time through
:func:`training.train_predictor` (features: token counts and device; for the agentic
sessions also the prompt text, the step and the previous call; for Mooncake the turn
and the previous turn's output length, from the importer's conversations) on the
trace's training rows; :func:`forecast_table` turns it into the ``(n, D, K)`` quantile
table a :class:`scheduler_hooks.ForecastBook` reads. :func:`crossfit_forecasts`
forecasts every request out of fold, :func:`placeholder_forecasts` stands in when no
policy reads forecasts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.predictor import Predictor
from pipelines.simulate._trace import SESSION_SALT, TraceData

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def cache_dir(
    home: Path, trace: Path, fmt: str, devices: Sequence[str], slots: int, seed: int
) -> Path:
    """Where the predictor for this trace, device set, slots and seed is cached."""
    key = json.dumps([str(trace.resolve()), fmt, sorted(devices), slots, seed, 2])
    return home / "simulate" / hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def _training_frame(trace: TraceData, work: F64, devices: Sequence[str], rows: I64) -> Any:
    """One training row per (request, device type): target = service time there."""
    import pyarrow as pa

    columns: dict[str, list[Any]] = {}
    for j, device in enumerate(devices):
        part = {k: np.asarray(v)[rows] for k, v in trace.cols.items()}
        part["request_id"] = np.array([f"{r}@{device}" for r in part["request_id"]], dtype=object)
        part["device"] = np.full(len(rows), device, dtype=object)
        part["latency_s"] = work[rows, j]
        for k, v in part.items():
            columns.setdefault(k, []).extend(
                [None if isinstance(x, float) and np.isnan(x) else x for x in v.tolist()]
            )
    return pa.table(columns)


def train_forecaster(
    trace: TraceData,
    work: F64,
    devices: Sequence[str],
    out_dir: Path,
    *,
    seed: int = 0,
    trials: int = 2,
    max_epochs: int = 20,
    on_trial: Callable[[Any], None] | None = None,
) -> Predictor:
    """Train (or load from ``out_dir``) the service-time predictor on the training rows.

    Uses :func:`training.train_predictor` (Optuna search over ``trials`` trials,
    conformal calibration); text features (hashed n-grams) are searched only when
    the trace has prompts. The bundle is cached in ``out_dir/predictor``.
    """
    bundle = out_dir / "predictor"
    if (bundle / "spec.json").exists():
        return Predictor.load(bundle)
    from core.predictor import TextSpec
    from training import SearchSpace, TrainConfig, TrainRequest, train_predictor
    from training.text import TextFeatures

    def provide(spec: TextSpec, prompts: Sequence[str | None], keys: Any) -> Any:
        return TextFeatures(spec).transform(prompts), None, None

    has_text = "prompt" in trace.cols
    variants = (
        (TextSpec(kind="hashed_ngrams", buckets=1024, ngram_max=2),)
        if has_text
        else (TextSpec(kind="none"),)
    )
    request = TrainRequest(
        served_model="simulate",
        trials=trials,
        timeout_s=600.0,
        seed=seed,
        base=TrainConfig(batch_size=512, max_epochs=max_epochs, patience=4),
        space=SearchSpace(text_variants=variants, widths=(64, 128), depth=(2, 2)),
        prompt_classes=0,
        max_cost_us=None,
        baselines=(),
    )
    frame = _training_frame(trace, work, devices, np.flatnonzero(trace.train))
    outcome = train_predictor(frame, request, provide, out_dir / "plots", on_trial=on_trial)
    outcome.predictor.save(bundle)
    return outcome.predictor


def task_folds(trace: TraceData, folds: int) -> I64:
    """Fold of every request, ``0 .. folds-1``, by a stable hash of its task.

    The task is :func:`training.group_keys`' group (for the agentic calls the SWE-bench
    instance, across runs), so one task never sits in two folds.
    """
    from training import group_keys

    return np.array(
        [
            int.from_bytes(hashlib.blake2b(f"{SESSION_SALT}:{k}".encode(), digest_size=4).digest())
            % folds
            for k in group_keys(trace.cols)
        ],
        dtype=np.int64,
    )


def crossfit_forecasts(
    trace: TraceData,
    work: F64,
    devices: Sequence[str],
    out_dir: Path,
    *,
    folds: int = 3,
    seed: int = 0,
    trials: int = 2,
    max_epochs: int = 20,
) -> tuple[TraceData, F64, tuple[float, ...]]:
    """Out-of-fold forecasts for EVERY request: replay the whole trace without leakage.

    Requests are split into ``folds`` folds by a stable hash of their task
    (:func:`training.group_keys`: the same task never sits in two folds); for each fold
    a predictor is trained (:func:`train_forecaster`, cached in ``out_dir/fold<k>``) on
    the other folds and forecasts that fold only. Used for the agentic sessions, whose
    held-out fold alone is too few concurrent sessions to offer a steady load.

    Returns:
        ``(trace with no training rows, quantiles (n, D, K), levels)``.
    """
    fold = task_folds(trace, folds)
    quantiles: F64 | None = None
    levels: tuple[float, ...] = ()
    for k in range(folds):
        held = fold == k
        part = replace(trace, train=~held)
        predictor = train_forecaster(
            part,
            work,
            devices,
            out_dir / f"fold{k}",
            seed=seed,
            trials=trials,
            max_epochs=max_epochs,
        )
        table = forecast_table(predictor, part.subset(np.flatnonzero(held)), devices)
        if quantiles is None:
            levels = tuple(predictor.spec.levels)
            quantiles = np.empty((trace.n, len(devices), len(levels)))
        elif tuple(predictor.spec.levels) != levels:
            raise ValueError("fold predictors disagree on their quantile levels")
        quantiles[held] = table
    assert quantiles is not None
    return replace(trace, train=np.zeros(trace.n, dtype=bool)), quantiles, levels


def forecast_table(predictor: Predictor, trace: TraceData, devices: Sequence[str]) -> F64:
    """Service-time quantiles of every request on every device, ``(n, D, K)`` seconds."""
    out = np.empty((trace.n, len(devices), len(predictor.spec.levels)))
    for j, device in enumerate(devices):
        cols = dict(trace.cols)
        cols["device"] = np.full(trace.n, device, dtype=object)
        out[:, j, :] = np.maximum(predictor.predict(cols, trace.n), 0.0)
    return out


def placeholder_forecasts(work: F64) -> tuple[F64, tuple[float, ...]]:
    """Forecasts for runs whose policies read none: each device's unconditional quantiles.

    Returns:
        ``(quantiles (n, D, K), levels)``; every request gets the same row per device.
    """
    from core.predictor import DEFAULT_LEVELS

    marginal = np.quantile(work, DEFAULT_LEVELS, axis=0).T  # (D, K)
    return np.broadcast_to(marginal, (len(work), *marginal.shape)), DEFAULT_LEVELS
