"""Quick models: a small search over cheap variants, registered and promoted if better.

Used where a model is needed within minutes rather than the best one within the hour:
the first champions of ``tailcast run`` and the llm-d TTFT/TPOT retrain rounds. The
search is limited to cheap text variants, only the empirical baseline is scored (the
full job scores all three), and the new version
becomes ``champion`` only when it beats the current one on the same held-out rows (or
when there is none). ``tailcast train`` remains the full job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core import Settings
from core.predictor import TextSpec

if TYPE_CHECKING:
    import pyarrow as pa

    from training import TextProvider

#: Text variants by name (cheap ones only: no sentence encoder, no static table build).
TEXT_VARIANTS = {
    "none": TextSpec(kind="none"),
    "hashed_ngrams": TextSpec(kind="hashed_ngrams", buckets=1024, ngram_max=2),
}


#: Baselines a quick model is scored against: the instant one (per-model empirical
#: quantiles), so its comparison plot has a reference; ``tailcast train`` scores all.
QUICK_BASELINES = ("empirical",)


@dataclass(frozen=True, slots=True)
class QuickTrain:
    """What to train.

    Attributes:
        key: Served-model key the version is registered under.
        target: Frame column to predict.
        trials: Search trials.
        timeout_s: Seconds after which the search starts no new trial.
        text: Names of the text variants the search may pick (:data:`TEXT_VARIANTS`).
    """

    key: str
    target: str = "latency_s"
    trials: int = 4
    timeout_s: float = 120.0
    text: tuple[str, ...] = ("none", "hashed_ngrams")


def train_and_register(
    settings: Settings,
    frame: pa.Table,
    plan: QuickTrain,
    provider: TextProvider,
    *,
    tags: Mapping[str, str] | None = None,
    on_trial: Callable[[Any], None] | None = None,
) -> tuple[int, bool]:
    """Train, register as ``plan.key`` and (if it wins) promote.

    Returns:
        (registered version, whether it became the champion).
    """
    from pipelines.train import flat_metrics, input_example
    from registry import MLflowRegistry
    from training import SearchSpace, TrainConfig, TrainRequest, evaluate_models, train_predictor

    request = TrainRequest(
        served_model=plan.key,
        target=plan.target,
        trials=plan.trials,
        timeout_s=plan.timeout_s,
        storage=settings.optuna_storage,
        base=TrainConfig(batch_size=512, max_epochs=30, patience=5),
        space=SearchSpace(text_variants=tuple(TEXT_VARIANTS[t] for t in plan.text)),
        prompt_classes=0 if plan.text == ("none",) else 4,
        baselines=QUICK_BASELINES,
    )
    run_dir = settings.home / "runs" / f"{plan.key}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    outcome = train_predictor(frame, request, provider, run_dir, on_trial=on_trial)
    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    champion = registry.alias_version(plan.key)
    champion_loss: float | None = None
    if champion is not None:
        old, _ = registry.load(plan.key, version=champion.version)
        split = outcome.split
        scores, _ = evaluate_models(old, outcome.data, split.train, split.test, baselines=())
        champion_loss = float(scores["tailcast"]["mean_pinball"])
    metrics = flat_metrics(outcome.comparison)
    version = registry.log_training(
        plan.key,
        outcome.predictor,
        params={
            "served_model": plan.key,
            "target": plan.target,
            "trials": plan.trials,
            **_selected(outcome),
        },
        metrics=metrics,
        artifacts=outcome.plots,
        input_example=input_example(outcome.data.rows(outcome.split.test)),
        tags={"quick": "true", **(tags or {})},
    )
    promoted = champion_loss is None or metrics["mean_pinball"] < champion_loss
    if promoted:
        registry.promote(plan.key, version.version)
    return version.version, promoted


def _selected(outcome: Any) -> dict[str, Any]:
    """The selected trial's number and hyperparameters, as run parameters."""
    selected = outcome.search.selected
    if selected is None:
        return {}
    return {"selected_trial": selected.number, **selected.config.model_dump(mode="json")}
