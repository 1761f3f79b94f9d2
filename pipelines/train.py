"""The training job: store -> frame -> search/calibrate/evaluate -> MLflow registry.

Wires the feature store (frames, embedding cache), training and the registry, and
applies the promotion policy: the new version becomes ``champion`` only when it
beats the current champion on the same held-out rows (or when there is none).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core import Settings
from core.predictor import Predictor, TextSpec
from feature_store import RecordStore
from training import TextProvider

if TYPE_CHECKING:
    from registry import MLflowRegistry, ModelVersion
    from training import TrainOutcome, TrainRequest, TrialOutcome

EXAMPLE_ROWS = 3


@dataclass
class TrainReport:
    """What a training job did."""

    served_model: str
    version: int
    promoted: bool
    champion_before: int | None
    champion_mean_pinball: float | None
    metrics: dict[str, float]
    comparison: dict[str, dict[str, Any]]
    selected: dict[str, Any]
    trials: int
    run_dir: Path

    def as_json(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "served_model": self.served_model,
            "version": self.version,
            "promoted": self.promoted,
            "champion_before": self.champion_before,
            "champion_mean_pinball": self.champion_mean_pinball,
            "metrics": self.metrics,
            "models": self.comparison,
            "selected": self.selected,
            "trials": self.trials,
            "run_dir": str(self.run_dir),
        }


def text_provider(
    store: RecordStore, table_dir: Path, progress: Callable[[str, int, int], None] | None
) -> TextProvider:
    """A training text provider backed by the store's embedding cache."""
    from training.text import TextFeatures

    def provide(
        spec: TextSpec, prompts: Sequence[str | None], keys: Sequence[str | None] | None
    ) -> tuple[np.ndarray, np.ndarray | None, str | None]:
        features = TextFeatures(spec, cache=store, table_dir=table_dir, progress=progress)
        x = features.transform(prompts, keys)
        if spec.kind == "static_table":
            table, tokenizer = features.static_table()
            return x, table, tokenizer
        return x, None, None

    return provide


def flat_metrics(comparison: dict[str, dict[str, Any]]) -> dict[str, float]:
    """MLflow metric names: tailcast's unprefixed, baselines' prefixed by name."""
    out: dict[str, float] = {}
    for name, score in comparison.items():
        prefix = "" if name == "tailcast" else f"{name}."
        for key, value in score.items():
            if isinstance(value, dict):
                for level, v in value.items():
                    out[f"{prefix}{key}_{level}"] = float(v)
            else:
                out[f"{prefix}{key}"] = float(value)
    return out


def input_example(frame_rows: dict[str, Any]) -> pd.DataFrame:
    """A small request DataFrame for the MLflow signature."""
    from registry import EXAMPLE_COLUMNS

    data = {
        c: list(frame_rows[c][:EXAMPLE_ROWS]) if c in frame_rows else [None] * EXAMPLE_ROWS
        for c in EXAMPLE_COLUMNS
    }
    return pd.DataFrame(data)


def parameter_count(predictor: Predictor) -> int:
    """Weights in the network (text table excluded)."""
    return int(
        sum(
            v.size
            for k, v in predictor.arrays.items()
            if k.endswith(("_W", "_b")) and not k.startswith("text_table")
        )
    )


def train_served_model(
    settings: Settings,
    store: RecordStore,
    served_model: str,
    *,
    target: str = "latency_s",
    trials: int = 16,
    timeout_s: float | None = 540.0,
    seed: int = 0,
    cross_fit: int = 5,
    on_trial: Callable[[Any], None] | None = None,
    on_text: Callable[..., None] | None = None,
) -> TrainReport:
    """Train, register and (if it wins) promote a predictor for ``served_model``.

    ``cross_fit`` is :attr:`training.TrainRequest.cross_fit`: the members of the
    registered predictor (0 or 1: the selected trial's own fit).
    """
    from registry import MLflowRegistry
    from training import TrainRequest, train_predictor

    as_of = datetime.now(UTC)
    frame = store.training_frame(served_model, as_of=as_of, require=(target,))
    if frame.num_rows == 0:
        raise ValueError(f"no records with {target} for served model {served_model!r}")
    run_dir = settings.home / "runs" / f"{served_model}-{as_of:%Y%m%dT%H%M%S}"
    request = TrainRequest(
        served_model=served_model,
        target=target,
        trials=trials,
        timeout_s=timeout_s,
        storage=settings.optuna_storage,
        seed=seed,
        cross_fit=cross_fit,
    )
    provider = text_provider(store, settings.home / "cache" / "static_tables", on_text)
    outcome = train_predictor(frame, request, provider, run_dir, on_trial=on_trial)
    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    return _register(registry, request, outcome, as_of, run_dir)


def _register(
    registry: MLflowRegistry,
    request: TrainRequest,
    outcome: TrainOutcome,
    as_of: datetime,
    run_dir: Path,
) -> TrainReport:
    """Register the trained predictor; promote it when it beats the champion (or none)."""
    served_model, target = request.served_model, request.target
    predictor = outcome.predictor
    meta = {"served_model": served_model, "trained_as_of": as_of.isoformat(), "target": target}
    predictor = Predictor(
        predictor.spec.model_copy(update={"metadata": meta}),
        predictor.arrays,
        predictor.tokenizer_json,
    )
    champion = registry.alias_version(served_model)
    champion_loss = _champion_loss(registry, served_model, champion, outcome)
    selected = outcome.search.selected
    assert selected is not None
    metrics = _metrics(outcome, predictor, selected)
    params = {
        "served_model": served_model,
        "target": target,
        "trials": request.trials,
        "selected_trial": selected.number,
        **selected.config.model_dump(mode="json"),
    }
    version = registry.log_training(
        served_model,
        predictor,
        params=params,
        metrics=metrics,
        artifacts=outcome.plots,
        input_example=input_example(outcome.data.rows(outcome.split.test)),
        tags={"trained_as_of": as_of.isoformat()},
    )
    promoted = champion_loss is None or metrics["mean_pinball"] < champion_loss
    if promoted:
        registry.promote(served_model, version.version)
    return TrainReport(
        served_model=served_model,
        version=version.version,
        promoted=promoted,
        champion_before=None if champion is None else champion.version,
        champion_mean_pinball=champion_loss,
        metrics=metrics,
        comparison=outcome.comparison,
        selected={
            "trial": selected.number,
            "text": selected.config.text.kind,
            "hidden": list(selected.config.hidden),
            "cost_us": selected.cost_us,
            "val_loss": selected.val_loss,
        },
        trials=len(outcome.search.trials),
        run_dir=run_dir,
    )


def _champion_loss(
    registry: MLflowRegistry,
    served_model: str,
    champion: ModelVersion | None,
    outcome: TrainOutcome,
) -> float | None:
    """The champion's mean pinball on the new model's test rows (None: no champion)."""
    from training import evaluate_models

    if champion is None:
        return None
    old, _ = registry.load(served_model, version=champion.version)
    scores, _ = evaluate_models(
        old, outcome.data, outcome.split.train, outcome.split.test, baselines=()
    )
    return float(scores["tailcast"]["mean_pinball"])


def _metrics(
    outcome: TrainOutcome, predictor: Predictor, selected: TrialOutcome
) -> dict[str, float]:
    """The run's metrics: the comparison's scores, costs, size and rows per split."""
    metrics = flat_metrics(outcome.comparison)
    metrics.update(
        {
            "prediction_us": outcome.cost_us,
            "batched_rps": outcome.throughput_rps,
            "parameter_count": float(parameter_count(predictor)),
            "val_pinball_transformed": selected.val_loss,
            **{f"rows_{k}": float(v) for k, v in outcome.split.sizes().items()},
        }
    )
    return metrics
