"""Optuna search per served model: validation loss versus measured prediction cost.

A two-objective study (minimize validation pinball loss, minimize µs per request)
over text variant, text head, projection width, hidden width, depth, dropout, learning
rate and loss space; the loss is measured in one space for every trial (the base
configuration's ``objective``).
Optuna does not prune multi-objective trials itself (``Trial.report`` is
single-objective only), so :class:`CurvePruner`, a Lightning callback, records each
trial's validation curve and stops a trial whose loss after ``warmup`` epochs is
worse than the median of finished trials at the same epoch. The selected trial is
the cheapest whose loss is within ``tolerance`` (2%) of the best.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.predictor import Predictor, TextSpec
from training._cost import prediction_cost_us
from training._data import Split, TrainingData
from training._fit import TrainConfig, fit_network
from training._study import affordable_variants, open_study, suggest_config

TextProvider = Callable[
    [TextSpec, Sequence[str | None], Sequence[str | None] | None],
    tuple[np.ndarray, np.ndarray | None, str | None],
]
"""Given a text variant, the prompts and their SHA-256 keys: (raw features for every
row, the distilled table for ``static_table``, its tokenizer JSON)."""


def provide_text(
    provider: TextProvider, spec: TextSpec, data: TrainingData
) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """Call ``provider`` for every row of ``data``."""
    prompts = data.cols.get("prompt")
    texts: list[str | None] = [None] * data.n if prompts is None else list(prompts)
    keys = data.cols.get("prompt_sha256")
    x, table, tokenizer = provider(spec, texts, None if keys is None else list(keys))
    return np.asarray(x, dtype=np.float64), table, tokenizer


class SearchSpace(BaseModel):
    """What the search may choose (frozen configuration).

    ``text_heads``: how text features become an input (``learned`` projection and/or
    the ``ridge`` prompt-effect head; see :class:`training.TrainConfig`).
    ``seed_text_variants``: the first trials of a new study try each allowed text
    variant once (other parameters sampled), so a short search cannot miss one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    text_variants: tuple[TextSpec, ...] = (
        TextSpec(kind="none"),
        TextSpec(kind="hashed_ngrams", buckets=1024, ngram_max=2),
        TextSpec(kind="static_table"),
        TextSpec(kind="encoder", encoder_layers=2),
    )
    projections: tuple[int, ...] = (8, 16, 32)
    widths: tuple[int, ...] = (32, 64, 128, 256)
    depth: tuple[int, int] = (1, 3)
    dropout: tuple[float, float] = (0.0, 0.3)
    lr: tuple[float, float] = (5e-4, 5e-3)
    loss_spaces: tuple[str, ...] = ("transformed", "target")
    text_weight_decay: tuple[float, float] = (1e-4, 3.0)
    text_heads: tuple[Literal["learned", "ridge"], ...] = Field(("learned",), min_length=1)
    seed_text_variants: bool = False


@dataclass
class TrialOutcome:
    """One finished trial."""

    number: int
    config: TrainConfig
    val_loss: float
    cost_us: float
    predictor: Predictor | None = None
    pareto: bool = False


@dataclass
class SearchResult:
    """All finished trials, the Pareto front and the selected trial."""

    trials: list[TrialOutcome] = field(default_factory=list)
    selected: TrialOutcome | None = None


def _variant_key(spec: TextSpec) -> str:
    return spec.model_dump_json()


class CurvePruner:
    """Lightning callback pruning a trial whose validation curve lags the median."""

    def __init__(self, trial: Any, warmup: int = 5, min_finished: int = 4) -> None:
        self.trial, self.warmup, self.min_finished = trial, warmup, min_finished
        self.curve: list[float] = []

    def as_callback(self) -> Any:
        """The Lightning :class:`Callback` wrapping this pruner."""
        from lightning.pytorch.callbacks import Callback

        pruner = self

        class _Callback(Callback):
            def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
                pruner.step(float(trainer.callback_metrics["val_objective"]))

        return _Callback()

    def step(self, loss: float) -> None:
        """Record one epoch; raise ``optuna.TrialPruned`` when the trial lags."""
        import optuna

        self.curve.append(loss)
        self.trial.set_user_attr("val_curve", self.curve)
        epoch = len(self.curve) - 1
        if epoch < self.warmup:
            return
        finished = [
            t.user_attrs["val_curve"]
            for t in self.trial.study.get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
            )
            if len(t.user_attrs.get("val_curve", [])) > epoch
        ]
        if len(finished) >= self.min_finished:
            median = float(np.median([min(c[: epoch + 1]) for c in finished]))
            if min(self.curve) > median * 1.05:
                raise optuna.TrialPruned(f"epoch {epoch}: {min(self.curve):.4f} > {median:.4f}")


def select(
    trials: Sequence[TrialOutcome], tolerance: float = 0.02, max_cost_us: float | None = None
) -> TrialOutcome:
    """Mark the Pareto front; return the cheapest trial within ``tolerance`` of the best loss.

    Trials over the cost budget ``max_cost_us`` are only chosen when none is within it.
    """
    for t in trials:
        t.pareto = not any(
            o.val_loss <= t.val_loss
            and o.cost_us <= t.cost_us
            and (o.val_loss < t.val_loss or o.cost_us < t.cost_us)
            for o in trials
        )
    affordable = [t for t in trials if max_cost_us is None or t.cost_us <= max_cost_us]
    pool = affordable or list(trials)
    best = min(t.val_loss for t in pool)
    eligible = [t for t in pool if t.val_loss <= best * (1 + tolerance)]
    return min(eligible, key=lambda t: (t.cost_us, t.val_loss))


def search_distributions(space: SearchSpace, text_keys: Sequence[str]) -> dict[str, Any]:
    """The Optuna distribution of every parameter a trial of ``space`` suggests.

    Args:
        space: The search space.
        text_keys: The text variants the search may choose (after the cost filter).
    """
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {
        "text": CategoricalDistribution(list(text_keys)),
        "depth": IntDistribution(*space.depth),
        "width": CategoricalDistribution(list(space.widths)),
        "projection": CategoricalDistribution(list(space.projections)),
        "dropout": FloatDistribution(*space.dropout),
        "lr": FloatDistribution(*space.lr, log=True),
        "loss_space": CategoricalDistribution(list(space.loss_spaces)),
        "text_weight_decay": FloatDistribution(*space.text_weight_decay, log=True),
    }
    if len(space.text_heads) > 1:
        out["text_head"] = CategoricalDistribution(list(space.text_heads))
    return out


def joinable_study_name(name: str, storage: str | None, distributions: dict[str, Any]) -> str:
    """``name``, or ``<name>-<8 hex>`` when the study ``name`` has other parameter choices.

    Optuna refuses a categorical parameter whose choices differ from the study's
    ("dynamic value space"), e.g. ``tailcast run``'s first-champion search (cheap text
    variants) and ``tailcast train`` (all of them) on one served model. Such a search
    joins the study named by a hash of its own distributions instead: stable, so the
    workers of one search space still share one study.

    Args:
        name: The study name asked for.
        storage: The Optuna storage URL (``None``: in memory, always a fresh study).
        distributions: What a trial suggests (:func:`search_distributions`).
    """
    if storage is None:
        return name
    import optuna
    from optuna.distributions import check_distribution_compatibility, distribution_to_json
    from sqlalchemy.exc import SQLAlchemyError

    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except (KeyError, SQLAlchemyError):  # no such study yet (or its tables are being made)
        return name
    seen: set[str] = set()
    for trial in study.get_trials(deepcopy=False):
        for param, old in trial.distributions.items():
            if param in seen or param not in distributions:
                continue
            seen.add(param)
            try:
                check_distribution_compatibility(old, distributions[param])
            except ValueError:
                spec = {k: distribution_to_json(v) for k, v in sorted(distributions.items())}
                digest = hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:8]
                return f"{name}-{digest}"
    return name


def run_search(
    data: TrainingData,
    split: Split,
    text_provider: TextProvider,
    *,
    base: TrainConfig,
    space: SearchSpace,
    trials: int,
    timeout: float | None,
    storage: str | None,
    study_name: str,
    seed: int = 0,
    max_cost_us: float | None = None,
    text_cost_us: Callable[[TextSpec], float] | None = None,
    on_trial: Callable[[TrialOutcome | None], None] | None = None,
) -> SearchResult:
    """Run (or join) the study and return its finished trials and the selection.

    Args:
        data: All rows (text features are filled in per variant).
        split: Folds; the network trains on ``train`` and is scored on ``val``.
        text_provider: Computes (or loads from the cache) raw text features.
        base: Defaults for everything the search does not vary.
        space: The search space.
        trials: Trials to run in this process.
        timeout: Seconds after which no new trial starts.
        storage: Optuna storage URL (SQLite by default; any RDB URL shares the study).
        study_name: Study name (one per served model and target); a study of that
            name whose parameters disagree with this space is left alone and
            ``<study_name>-<hash>`` is used instead (see :func:`joinable_study_name`).
        seed: Sampler seed.
        max_cost_us: Prediction budget per request (µs). Text variants whose text
            features alone cost more than 80% of it (by ``text_cost_us``) are not
            searched, and the selection prefers trials within the budget.
        text_cost_us: Measures a text variant's cost per prompt (µs).
        on_trial: Called after each trial (None for a pruned one), for progress.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    allowed = affordable_variants(space.text_variants, max_cost_us, text_cost_us)
    variants = {_variant_key(v): v for v in allowed}
    study_name = joinable_study_name(
        study_name, storage, search_distributions(space, list(variants))
    )
    study, created = open_study(optuna, study_name, storage, seed)
    local: dict[int, TrialOutcome] = {}
    objective = _objective(data, split, text_provider, base, space, variants, seed, on_trial, local)
    if space.seed_text_variants and created:
        for key in variants:
            study.enqueue_trial({"text": key})
    study.optimize(objective, n_trials=trials, timeout=timeout, catch=())
    result = SearchResult()
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        if t.number in local:
            result.trials.append(local[t.number])
        elif "config" in t.user_attrs and t.values is not None:
            config = TrainConfig.model_validate(json.loads(t.user_attrs["config"]))
            result.trials.append(TrialOutcome(t.number, config, t.values[0], t.values[1]))
    if result.trials:
        result.selected = select(result.trials, max_cost_us=max_cost_us)
    return result


def _objective(
    data: TrainingData,
    split: Split,
    text_provider: TextProvider,
    base: TrainConfig,
    space: SearchSpace,
    variants: dict[str, TextSpec],
    seed: int,
    on_trial: Callable[[TrialOutcome | None], None] | None,
    local: dict[int, TrialOutcome],
) -> Callable[[Any], tuple[float, float]]:
    """The study's objective: (validation loss, prediction cost in µs) of one trial.

    Each finished trial's outcome (with its predictor) is put in ``local`` by number;
    text features are computed once per variant and shared by its trials.
    """
    import optuna

    features: dict[str, tuple[np.ndarray, np.ndarray | None, str | None]] = {}

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        config = suggest_config(trial, base, space, variants, seed)
        key = _variant_key(config.text)
        if key not in features:
            features[key] = provide_text(text_provider, variants[key], data)
        data.text, table, tokenizer = features[key]
        pruner = CurvePruner(trial)
        try:
            predictor, val_loss = fit_network(
                data,
                split.train,
                split.val,
                config,
                static_table=table,
                tokenizer_json=tokenizer,
                callbacks=[pruner.as_callback()],
            )
        except optuna.TrialPruned:
            if on_trial:
                on_trial(None)
            raise
        cost = prediction_cost_us(predictor, data, split.val)
        trial.set_user_attr("config", config.model_dump_json())
        outcome = TrialOutcome(trial.number, config, val_loss, cost, predictor)
        local[trial.number] = outcome
        if on_trial:
            on_trial(outcome)
        return val_loss, cost

    return objective
