"""Score a registered champion and the baselines on records from any file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from core import Settings
from feature_store import DuckDBStore, open_store


def evaluate_champion(
    settings: Settings, served_model: str, path: Path, fmt: str
) -> dict[str, Any]:
    """Champion vs baselines on ``path``; JSON-ready result.

    The file is ingested into a throw-away in-memory store so its endpoint and
    workflow features are computed exactly as for training (from its own history).
    """
    from feature_store.importers import detect_format, get_importer
    from registry import MLflowRegistry
    from training import EVAL_LEVELS, TrainingData, evaluate_models, group_keys, split_by_group

    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    predictor, version = registry.load(served_model)
    target = predictor.spec.target
    cutoff = predictor.spec.metadata.get("trained_as_of")
    with open_store(settings) as store:
        frame = store.training_frame(
            served_model,
            as_of=datetime.fromisoformat(cutoff) if cutoff else None,
            require=(target,),
        )
    train_data = TrainingData.from_arrow(frame, target)
    train_rows = split_by_group(group_keys(train_data.cols)).train
    with DuckDBStore(":memory:") as scratch:
        importer = get_importer(detect_format(path) if fmt == "auto" else fmt)
        scratch.ingest_batches(importer.read(path))
        eval_frame = scratch.training_frame(served_model, require=(target,))
    eval_data = TrainingData.from_arrow(eval_frame, target)
    if eval_data.n == 0:
        raise ValueError(f"{path}: no records of {served_model!r} with {target}")
    scores, _ = evaluate_models(
        predictor,
        train_data,
        train_rows,
        np.arange(eval_data.n, dtype=np.int64),
        eval_data=eval_data,
    )
    return {
        "quantiles": list(EVAL_LEVELS),
        "models": scores,
        "version": version.version,
        "rows": eval_data.n,
        "served_model": served_model,
    }
