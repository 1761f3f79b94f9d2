"""The steps of :func:`training.fit_network`: inputs, training loop and exported arrays.

Torch and Lightning are imported inside the functions that use them, so importing this
module (and ``training``) stays cheap.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from core.predictor import PredictorSpec, numeric_matrix, tabular_matrix
from training._data import I64, TrainingData
from training._ridge import RidgeHead, prompt_effect_feature

if TYPE_CHECKING:
    from training._fit import TrainConfig
    from training._module import QuantileNet

F64 = npt.NDArray[np.float64]


def transform_target(y: F64, how: str) -> F64:
    """The training-space target (log seconds for latencies)."""
    return np.log(y) if how == "log" else np.log1p(y)


def objective_space(config: TrainConfig) -> str:
    """The space of the validation objective (``config.objective``, or the loss space)."""
    return config.loss_space if config.objective == "loss" else config.objective


@dataclass(frozen=True)
class NetworkInputs:
    """The network's inputs for every row of the data.

    Attributes:
        mean: Per-feature mean of the training rows' numeric features (0 when all missing).
        std: Their standard deviation (1 when all missing or constant).
        tab: Standardized tabular matrix, one row per data row.
        text: Text features the network sees (width 0 without a text projection).
        has_text: 1 for rows with a prompt, else 0.
        y: The transformed target.
        head: The cross-fitted ridge head of the ``ridge`` text head (``None`` otherwise,
            or when too few prompts gave it no signal).
    """

    mean: F64
    std: F64
    tab: F64
    text: F64
    has_text: F64
    y: F64
    head: RidgeHead | None


def network_inputs(
    data: TrainingData,
    train: I64,
    spec: PredictorSpec,
    config: TrainConfig,
    standardize: I64 | None = None,
) -> NetworkInputs:
    """Build the network's inputs, standardized with ``standardize``'s statistics.

    ``standardize`` defaults to the training rows; the members of one ensemble pass
    the same rows, so that they share one input layout (features only, no target).
    """
    stats = train if standardize is None else standardize
    raw = numeric_matrix(data.rows(stats), spec.numeric, len(stats))
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
    return NetworkInputs(mean, std, tab, text, has_text, y, head)


def train_network(
    inputs: NetworkInputs,
    data: TrainingData,
    train: I64,
    val: I64,
    spec: PredictorSpec,
    config: TrainConfig,
    callbacks: Sequence[Any],
) -> tuple[QuantileNet, float]:
    """Train the network with early stopping; the best epoch's net and its val objective."""
    import lightning as pl
    import torch
    from lightning.pytorch.callbacks import EarlyStopping

    from training._module import QuantileNet

    torch.manual_seed(config.seed)
    train_loader, val_loader = _loaders(inputs, train, val, config)
    net = QuantileNet(
        inputs.tab.shape[1],
        inputs.text.shape[1],
        spec.projection,
        config.hidden,
        config.dropout,
        len(config.levels),
        fixed_text=config.text_head == "ridge",
    )
    net.init_head(np.quantile(inputs.y[train], config.levels))
    keep = _keep_best()
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
    trainer.fit(_module(net, data, train, config), train_loader, val_loader)
    if keep.state is not None:
        net.load_state_dict(keep.state)
    return net, keep.best


def _loaders(inputs: NetworkInputs, train: I64, val: I64, config: TrainConfig) -> tuple[Any, Any]:
    """Shuffled (seeded) training batches and whole-set validation batches."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    def tensors(rows: I64) -> TensorDataset:
        return TensorDataset(
            torch.as_tensor(inputs.tab[rows], dtype=torch.float32),
            torch.as_tensor(inputs.text[rows], dtype=torch.float32),
            torch.as_tensor(inputs.has_text[rows], dtype=torch.float32),
            torch.as_tensor(inputs.y[rows], dtype=torch.float32),
        )

    gen = torch.Generator().manual_seed(config.seed)
    train_loader = DataLoader(
        tensors(train), batch_size=config.batch_size, shuffle=True, generator=gen
    )
    return train_loader, DataLoader(tensors(val), batch_size=4096)


def _module(net: QuantileNet, data: TrainingData, train: I64, config: TrainConfig) -> Any:
    """The Lightning module: pinball loss in ``config.loss_space``, AdamW."""
    from training._module import QuantileModule

    median = max(float(np.median(data.y[train])), 1e-9)
    return QuantileModule(
        net,
        config.levels,
        config.lr,
        config.weight_decay,
        median if config.loss_space == "target" else None,
        config.text_weight_decay,
        transform=config.target_transform,
        objective_scale=median if objective_space(config) == "target" else None,
    )


def _keep_best() -> Any:
    """A callback keeping the net's state at its best ``val_objective`` (``.best``, ``.state``)."""
    from lightning.pytorch.callbacks import Callback

    class KeepBest(Callback):
        def __init__(self) -> None:
            self.best = float("inf")
            self.state: dict[str, Any] | None = None

        def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            loss = float(trainer.callback_metrics["val_objective"])
            if loss < self.best:
                self.best, self.state = loss, copy.deepcopy(pl_module.net.state_dict())

    return KeepBest()


def arrays_of(
    net: QuantileNet,
    inputs: NetworkInputs,
    data: TrainingData,
    spec: PredictorSpec,
    config: TrainConfig,
    static_table: npt.NDArray[np.float32] | None,
) -> dict[str, Any]:
    """The predictor's NumPy arrays: standardization, weights and the text head.

    Raises:
        ValueError: The ``static_table`` variant without its distilled table.
    """
    arrays: dict[str, Any] = {"num_mean": inputs.mean, "num_std": inputs.std, **net.export()}
    if inputs.head is not None:
        arrays["text_W"] = inputs.head.weights.reshape(-1, 1)
        arrays["text_b"] = np.array([inputs.head.bias])
    elif spec.projection and config.text_head == "ridge":  # too few prompts: no signal
        arrays["text_W"] = np.zeros((data.text.shape[1], 1))
        arrays["text_b"] = np.zeros(1)
    if spec.text.kind == "static_table" and "text_W" in arrays:
        if static_table is None:
            raise ValueError("the static_table variant needs the distilled table")
        arrays["text_table"] = (static_table @ arrays.pop("text_W")).astype(np.float32)
    return arrays
