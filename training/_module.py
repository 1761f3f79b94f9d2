"""The quantile network and its LightningModule.

The network mirrors :class:`core.predictor.Predictor`'s NumPy forward pass exactly:
text features go through a linear projection, are concatenated with the tabular
input, pass ReLU hidden layers, and a head emits the lowest quantile plus softplus
increments, so quantiles never cross. Training minimizes the pinball loss of the
transformed (log) target over the level grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as pl
import numpy as np
import numpy.typing as npt
import torch
from torch import nn


def pinball_loss(y: torch.Tensor, q: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Mean pinball loss of quantiles ``q`` (n, K) for targets ``y`` (n,)."""
    diff = y.unsqueeze(1) - q
    return torch.maximum(levels * diff, (levels - 1) * diff).mean()


def head_to_quantiles(raw: torch.Tensor) -> torch.Tensor:
    """Lowest quantile plus cumulative softplus increments (non-crossing)."""
    inc = nn.functional.softplus(raw[:, 1:])
    return torch.cat([raw[:, :1], raw[:, :1] + torch.cumsum(inc, dim=1)], dim=1)


class QuantileNet(nn.Module):
    """MLP over (tabular, text) inputs producing raw quantile-head outputs.

    Args:
        d_tab: Width of the tabular input.
        d_text: Width of the raw text features (0: no text).
        projection: Width of the text projection (ignored when ``d_text`` is 0).
        hidden: Hidden layer widths.
        dropout: Dropout after each hidden activation (training only).
        n_levels: Quantile levels K.
        fixed_text: Text features enter as given (already projected, e.g. by the
            ridge head), without a learned projection.
    """

    def __init__(
        self,
        d_tab: int,
        d_text: int,
        projection: int,
        hidden: Sequence[int],
        dropout: float,
        n_levels: int,
        fixed_text: bool = False,
    ) -> None:
        super().__init__()
        self.use_text = d_text > 0 and (projection > 0 or fixed_text)
        self.fixed_text = fixed_text and self.use_text
        learned = self.use_text and not fixed_text
        self.text_proj = nn.Linear(d_text, projection) if learned else None
        width = d_tab + ((d_text if fixed_text else projection) if self.use_text else 0)
        self.hidden = nn.ModuleList()
        for h in hidden:
            self.hidden.append(nn.Linear(width, h))
            width = h
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, n_levels)

    def forward(
        self, tab: torch.Tensor, text: torch.Tensor, has_text: torch.Tensor
    ) -> torch.Tensor:
        """Raw head outputs (n, K); rows without a prompt get a zero text vector."""
        parts = [tab]
        if self.text_proj is not None:
            parts.append(self.text_proj(text) * has_text.unsqueeze(1))
        elif self.fixed_text:
            parts.append(text * has_text.unsqueeze(1))
        h = torch.cat(parts, dim=1)
        for layer in self.hidden:
            h = self.dropout(torch.relu(layer(h)))
        out: torch.Tensor = self.head(h)
        return out

    def init_head(self, y_quantiles: npt.NDArray[np.float64]) -> None:
        """Start the head at the training target's empirical quantiles (faster, stabler)."""
        with torch.no_grad():
            self.head.weight.mul_(0.01)
            gaps = np.maximum(np.diff(y_quantiles), 1e-3)
            inv_softplus = gaps + np.log(-np.expm1(-gaps))
            bias = np.concatenate([[y_quantiles[0]], inv_softplus])
            self.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))

    def export(self) -> dict[str, npt.NDArray[np.float32]]:
        """Weights in the NumPy bundle layout of :class:`core.predictor.Predictor`."""
        arrays: dict[str, npt.NDArray[np.float32]] = {}
        for i, layer in enumerate(self.hidden):
            assert isinstance(layer, nn.Linear)
            arrays[f"layer{i}_W"] = layer.weight.detach().numpy().T.copy()
            arrays[f"layer{i}_b"] = layer.bias.detach().numpy().copy()
        arrays["head_W"] = self.head.weight.detach().numpy().T.copy()
        arrays["head_b"] = self.head.bias.detach().numpy().copy()
        if self.text_proj is not None:
            arrays["text_W"] = self.text_proj.weight.detach().numpy().T.copy()
            arrays["text_b"] = self.text_proj.bias.detach().numpy().copy()
        return arrays


class QuantileModule(pl.LightningModule):
    """Lightning wrapper: pinball loss (transformed target or target units), AdamW.

    Args:
        net: The network.
        levels: Quantile levels (K,).
        lr: Learning rate.
        weight_decay: AdamW weight decay.
        loss_scale: When set, the loss is the pinball loss in target units (seconds)
            divided by this scale, instead of the pinball loss of the log target.
        text_weight_decay: Weight decay of the text projection (default: as the rest).
            Many rows often share one prompt (one instruction sent to many models), so
            the text path memorizes prompts unless it is regularized harder, as a ridge
            regression on embeddings would be.
        transform: The target transform (``log`` or ``log1p``), to undo it for losses
            in target units.
        objective_scale: When set, ``val_objective`` is the validation pinball loss in
            target units divided by this scale; otherwise it is the pinball loss of the
            transformed target. Early stopping and model selection watch it, so trials
            trained in different loss spaces are compared on one scale.
    """

    def __init__(
        self,
        net: QuantileNet,
        levels: Sequence[float],
        lr: float,
        weight_decay: float = 1e-4,
        loss_scale: float | None = None,
        text_weight_decay: float | None = None,
        transform: str = "log",
        objective_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.transform = transform
        self.objective_scale = objective_scale
        self.text_weight_decay = weight_decay if text_weight_decay is None else text_weight_decay
        self.net = net
        self.loss_scale = loss_scale
        self.register_buffer("levels", torch.tensor(list(levels), dtype=torch.float32))
        self.lr = lr
        self.weight_decay = weight_decay

    def _untransform(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x) if self.transform == "log" else torch.expm1(x)

    def _losses(
        self, batch: Sequence[torch.Tensor], scale: float | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(pinball in the loss space, pinball in the objective space)."""
        tab, text, has_text, y = batch
        q = head_to_quantiles(self.net(tab, text, has_text))
        levels: torch.Tensor = self.levels  # type: ignore[assignment]
        transformed = pinball_loss(y, q, levels)
        in_target = (
            pinball_loss(self._untransform(y), self._untransform(q), levels)
            if self.loss_scale is not None or scale is not None
            else transformed
        )
        loss = in_target / self.loss_scale if self.loss_scale is not None else transformed
        objective = in_target / scale if scale is not None else transformed
        return loss, objective

    def _loss(self, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        return self._losses(batch, None)[0]

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One optimization step."""
        loss = self._loss(batch)
        self.log("train_pinball", loss, prog_bar=False, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Validation pinball losses, logged as ``val_pinball`` and ``val_objective``."""
        loss, objective = self._losses(batch, self.objective_scale)
        self.log("val_pinball", loss, prog_bar=False, on_epoch=True, on_step=False)
        self.log("val_objective", objective, prog_bar=False, on_epoch=True, on_step=False)
        return loss

    def configure_optimizers(self) -> Any:
        """AdamW, with its own weight decay on the text projection."""
        text = list(self.net.text_proj.parameters()) if self.net.text_proj is not None else []
        text_ids = {id(p) for p in text}
        rest = [p for p in self.parameters() if id(p) not in text_ids]
        groups = [{"params": rest, "weight_decay": self.weight_decay}]
        if text:
            groups.append({"params": text, "weight_decay": self.text_weight_decay})
        return torch.optim.AdamW(groups, lr=self.lr)
