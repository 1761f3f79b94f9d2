"""Fit one quantile network with Lightning and export it as a NumPy bundle."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from core.predictor import (
    ALL_FEATURES,
    DEFAULT_LEVELS,
    Predictor,
    PredictorSpec,
    TextSpec,
    numeric_matrix,
    tabular_matrix,
)
from training._data import I64, TrainingData
from training._ridge import RidgeHead, prompt_effect_feature

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


def transform_target(y: F64, how: str) -> F64:
    """The training-space target (log seconds for latencies)."""
    return np.log(y) if how == "log" else np.log1p(y)


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


def _objective(config: TrainConfig) -> str:
    return config.loss_space if config.objective == "loss" else config.objective


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

    Returns:
        The predictor and the best validation loss in ``config.objective``'s space.
    """
    import lightning as pl
    import torch
    from lightning.pytorch.callbacks import Callback, EarlyStopping
    from torch.utils.data import DataLoader, TensorDataset

    from training._module import QuantileModule, QuantileNet

    torch.manual_seed(config.seed)
    spec = base_spec(data, train, config)
    spec = spec.model_copy(
        update={"text": spec.text.model_copy(update={"dim": data.text.shape[1]})}
    )
    raw = numeric_matrix(data.rows(train), spec.numeric, len(train))
    with warnings.catch_warnings():  # all-missing features: mean 0, std 1
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nan_to_num(np.nanmean(raw, axis=0)) if len(raw) else np.zeros(raw.shape[1])
        std = np.nan_to_num(np.nanstd(raw, axis=0), nan=1.0)
    std[std < 1e-9] = 1.0
    tab = tabular_matrix(spec, mean, std, data.cols, data.n)
    prompts = data.cols.get("prompt")
    has_text = np.array([bool(p) for p in prompts]) if prompts is not None else np.zeros(data.n)
    y = transform_target(data.y, config.target_transform)
    text = data.text if spec.projection else np.zeros((data.n, 0))
    head: RidgeHead | None = None
    if spec.projection and config.text_head == "ridge":
        text, head = prompt_effect_feature(
            data.text,
            y,
            [str(m) for m in data.cols["served_model"]],
            [None] * data.n if prompts is None else list(prompts),
            train,
            seed=config.seed,
        )

    def tensors(rows: I64) -> TensorDataset:
        return TensorDataset(
            torch.as_tensor(tab[rows], dtype=torch.float32),
            torch.as_tensor(text[rows], dtype=torch.float32),
            torch.as_tensor(has_text[rows], dtype=torch.float32),
            torch.as_tensor(y[rows], dtype=torch.float32),
        )

    gen = torch.Generator().manual_seed(config.seed)
    train_loader = DataLoader(
        tensors(train), batch_size=config.batch_size, shuffle=True, generator=gen
    )
    val_loader = DataLoader(tensors(val), batch_size=4096)
    net = QuantileNet(
        tab.shape[1],
        text.shape[1],
        spec.projection,
        config.hidden,
        config.dropout,
        len(config.levels),
        fixed_text=config.text_head == "ridge",
    )
    net.init_head(np.quantile(y[train], config.levels))
    median = max(float(np.median(data.y[train])), 1e-9)
    module = QuantileModule(
        net,
        config.levels,
        config.lr,
        config.weight_decay,
        median if config.loss_space == "target" else None,
        config.text_weight_decay,
        transform=config.target_transform,
        objective_scale=median if _objective(config) == "target" else None,
    )

    class KeepBest(Callback):
        def __init__(self) -> None:
            self.best = float("inf")
            self.state: dict[str, Any] | None = None

        def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            loss = float(trainer.callback_metrics["val_objective"])
            if loss < self.best:
                self.best, self.state = loss, copy.deepcopy(pl_module.net.state_dict())

    keep = KeepBest()
    trainer = pl.Trainer(
        max_epochs=config.max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
        callbacks=[EarlyStopping("val_objective", patience=config.patience), keep, *callbacks],
    )
    trainer.fit(module, train_loader, val_loader)
    if keep.state is not None:
        net.load_state_dict(keep.state)
    arrays: dict[str, Any] = {"num_mean": mean, "num_std": std, **net.export()}
    if head is not None:
        arrays["text_W"] = head.weights.reshape(-1, 1)
        arrays["text_b"] = np.array([head.bias])
    elif spec.projection and config.text_head == "ridge":  # too few prompts: no signal
        arrays["text_W"] = np.zeros((data.text.shape[1], 1))
        arrays["text_b"] = np.zeros(1)
    if spec.text.kind == "static_table" and "text_W" in arrays:
        if static_table is None:
            raise ValueError("the static_table variant needs the distilled table")
        arrays["text_table"] = (static_table @ arrays.pop("text_W")).astype(np.float32)
    return Predictor(
        spec, arrays, tokenizer_json if spec.text.kind == "static_table" else None
    ), keep.best
