"""Optuna plumbing of the search: opening the study, the storage, each trial's config.

Optuna is passed in by the caller (imported inside :func:`training._search.run_search`),
so importing this module stays cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from core.predictor import TextSpec

if TYPE_CHECKING:
    from training._fit import TrainConfig
    from training._search import SearchSpace


def affordable_variants(
    variants: Sequence[TextSpec],
    max_cost_us: float | None,
    text_cost_us: Callable[[TextSpec], float] | None,
) -> list[TextSpec]:
    """The text variants worth searching under a prediction budget.

    Args:
        variants: The search space's text variants.
        max_cost_us: Prediction budget per request (µs); None: no budget.
        text_cost_us: A variant's text-feature cost per prompt (µs); None: not measured.

    Returns:
        The variants whose text features cost at most 80% of the budget (every
        variant without a budget or a measure; ``none`` always).
    """
    return [
        v
        for v in variants
        if max_cost_us is None
        or text_cost_us is None
        or v.kind == "none"
        or text_cost_us(v) <= 0.8 * max_cost_us
    ]


def suggest_config(
    trial: Any, base: TrainConfig, space: SearchSpace, variants: dict[str, TextSpec], seed: int
) -> TrainConfig:
    """The trial's hyper-parameters: ``base`` with what ``space`` varies drawn by ``trial``.

    The text variant is drawn first (parameter ``text``, a key of ``variants``); the
    network's seed is ``seed`` plus the trial's number.
    """
    key = trial.suggest_categorical("text", list(variants))
    depth = trial.suggest_int("depth", *space.depth)
    width = trial.suggest_categorical("width", list(space.widths))
    return base.model_copy(
        update={
            "text": variants[key],
            "projection": trial.suggest_categorical("projection", list(space.projections)),
            "hidden": (width,) * depth,
            "dropout": trial.suggest_float("dropout", *space.dropout),
            "lr": trial.suggest_float("lr", *space.lr, log=True),
            "loss_space": trial.suggest_categorical("loss_space", list(space.loss_spaces)),
            "text_weight_decay": trial.suggest_float(
                "text_weight_decay", *space.text_weight_decay, log=True
            ),
            "text_head": (
                trial.suggest_categorical("text_head", list(space.text_heads))
                if len(space.text_heads) > 1
                else space.text_heads[0]
            ),
            "seed": seed + trial.number,
        }
    )


def open_study(optuna: Any, study_name: str, storage: str | None, seed: int) -> tuple[Any, bool]:
    """Create the study, or join it when another worker did: (study, created here).

    Creation is unique in the storage, so exactly one of several workers starting at
    once learns ``created`` and seeds the study's first trials; the others join it
    (a check of "no trials yet" would let each of them enqueue the seeds again).
    """
    kwargs = {
        "study_name": study_name,
        "storage": study_storage(optuna, storage),
        "directions": ["minimize", "minimize"],
        "sampler": optuna.samplers.TPESampler(seed=seed, multivariate=True),
    }
    try:
        return optuna.create_study(load_if_exists=False, **kwargs), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.create_study(load_if_exists=True, **kwargs), False


def study_storage(optuna: Any, url: str | None, attempts: int = 5) -> Any:
    """Optuna's storage for ``url`` (None: in memory), safe when workers start together.

    The first workers on a fresh database race to create Optuna's tables (one of them
    fails on a duplicate ``CREATE TABLE``); a retry finds the tables made by the other.
    """
    if url is None or not url.startswith(("postgresql", "mysql")):
        return url
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")
