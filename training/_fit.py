"""Fit one quantile network with Lightning and export it as a NumPy bundle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from core.predictor import (
    ALL_FEATURES,
    DEFAULT_LEVELS,
    Predictor,
    PredictorSpec,
    TextSpec,
)
from training._data import I64, TrainingData
from training._fit_steps import arrays_of, network_inputs, train_network

if TYPE_CHECKING:
    pass

F64 = npt.NDArray[np.float64]


class TrainConfig(BaseModel):
    """Hyper-parameters of one predictor (what the Optuna search varies).

    Attributes:
        text: Text variant.
        projection: Width of the learned text projection.
        hidden: Hidden layer widths.
        dropout: Dropout rate.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        batch_size: Rows per step.
        max_epochs: Upper bound on epochs (early stopping usually ends sooner).
        patience: Epochs without validation improvement before stopping.
        seed: Seed of initialization and shuffling.
        numeric: Numeric feature names.
        levels: Quantile grid.
        target: Target field.
        target_transform: ``log`` or ``log1p``.
        text_weight_decay: AdamW weight decay of the text projection.
        loss_space: ``transformed`` (pinball of the transformed target) or ``target``
            (pinball in target units, e.g. seconds, scaled by the training median).
        text_head: ``learned`` (a linear projection trained with the network, width
            ``projection``) or ``ridge`` (the prompt's effect on the transformed
            target, fitted in closed form and cross-fitted; see ``training._ridge``).
        objective: Space of the validation loss used for early stopping, the best
            epoch and the search: ``loss`` (the trial's ``loss_space``), ``transformed``
            or ``target`` (target units over the training median). A fixed space makes
            trials that train in different loss spaces comparable.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: TextSpec = TextSpec()
    projection: int = Field(default=16, ge=0)
    hidden: tuple[int, ...] = (64, 64)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    lr: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    batch_size: int = Field(default=256, ge=8)
    max_epochs: int = Field(default=60, ge=1)
    patience: int = Field(default=8, ge=1)
    seed: int = 0
    numeric: tuple[str, ...] = ALL_FEATURES
    levels: tuple[float, ...] = DEFAULT_LEVELS
    target: str = "latency_s"
    target_transform: str = "log"
    loss_space: str = "transformed"
    text_weight_decay: float = Field(default=1e-4, ge=0)
    text_head: Literal["learned", "ridge"] = "learned"
    objective: Literal["loss", "transformed", "target"] = "loss"


def base_spec(data: TrainingData, train: I64, config: TrainConfig) -> PredictorSpec:
    """Spec with vocabularies from the training rows (no weights yet)."""
    devices = sorted({str(d) for d in np.asarray(data.cols["device"], dtype=object)[train]})
    models = sorted({str(m) for m in np.asarray(data.cols["served_model"], dtype=object)[train]})
    return PredictorSpec(
        served_models=tuple(models),
        target=config.target,
        target_transform=config.target_transform,
        levels=config.levels,
        numeric=config.numeric,
        devices=tuple(devices),
        text=config.text,
        projection=_projection(config),
        text_head=config.text_head if config.text.kind != "none" else "learned",
        hidden=config.hidden,
    )


def _projection(config: TrainConfig) -> int:
    if config.text.kind == "none":
        return 0
    return 1 if config.text_head == "ridge" else config.projection


def fit_network(
    data: TrainingData,
    train: I64,
    val: I64,
    config: TrainConfig,
    *,
    static_table: npt.NDArray[np.float32] | None = None,
    tokenizer_json: str | None = None,
    callbacks: Sequence[Any] = (),
    standardize: I64 | None = None,
) -> tuple[Predictor, float]:
    """Train one network; return the (uncalibrated) predictor and its best val loss.

    Args:
        data: All rows; ``data.text`` holds the raw text features of the variant.
        train: Training rows.
        val: Validation rows (early stopping, model selection).
        config: Hyper-parameters.
        static_table: Raw distilled token table, for the ``static_table`` variant.
        tokenizer_json: Its tokenizer.
        callbacks: Extra Lightning callbacks (e.g. Optuna pruning).
        standardize: Rows whose numeric features set the standardization (default:
            ``train``; features only, the target is not read).

    Returns:
        The predictor and the best validation loss in ``config.objective``'s space.
    """
    spec = base_spec(data, train, config)
    spec = spec.model_copy(
        update={"text": spec.text.model_copy(update={"dim": data.text.shape[1]})}
    )
    inputs = network_inputs(data, train, spec, config, standardize)
    net, best = train_network(inputs, data, train, val, spec, config, callbacks)
    arrays = arrays_of(net, inputs, data, spec, config, static_table)
    return Predictor(
        spec, arrays, tokenizer_json if spec.text.kind == "static_table" else None
    ), best
