"""The SwarmPilot-style predictor: a small MLP giving quantiles of log latency.

Inputs are the numeric request features :data:`core.predictor.REQUEST_FEATURES`
(token counts, step, load, device figures), standardized with the training mean and
standard deviation, missing values set to 0 (the mean). An MLP with hidden layers
``[64, 32]`` (ReLU) outputs the quantiles 0.5/0.9/0.95/0.99 of ``log(y)`` (the target
standardized inside the model) through :func:`core.predictor.quantile_head`: the first
output is the lowest quantile, the others add softplus increments, so quantiles never
cross. Training minimizes the pinball loss with Adam in mini-batches, with early
stopping on a seeded 10% validation split (the best epoch's weights are kept).

Training needs torch (imported by :meth:`SwarmPilotMLP.fit` only); prediction is a
NumPy forward pass.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, ClassVar, Self

import numpy as np
import numpy.typing as npt

from core.predictor import REQUEST_FEATURES, numeric_matrix, quantile_head
from training.baselines._base import Baseline, check_levels, check_target
from training.baselines._columns import Columns, n_rows

if TYPE_CHECKING:
    import torch

F64 = npt.NDArray[np.float64]
#: The quantile levels SwarmPilot predicts.
SWARMPILOT_LEVELS: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)


def _quantile_head_torch(raw: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`core.predictor.quantile_head`."""
    import torch
    from torch.nn import functional

    first = raw[:, :1]
    return torch.cat([first, first + torch.cumsum(functional.softplus(raw[:, 1:]), dim=1)], 1)


def _pinball_torch(pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
    diff = target[:, None] - pred
    return (diff * (taus - (diff < 0).to(diff.dtype))).mean()


class SwarmPilotMLP(Baseline):
    """MLP quantile regression of log latency on the request features.

    Args:
        levels: Quantile levels to predict (SwarmPilot's by default).
        hidden: Hidden layer widths (ReLU).
        learning_rate: Adam step size.
        batch_size: Rows per optimizer step.
        max_epochs: Upper bound on passes over the training rows.
        patience: Epochs without a better validation loss before stopping.
        val_fraction: Share of the rows held out for early stopping.
        seed: Seed of the split, the initialization and the batch order.
        num_threads: Torch threads while fitting (restored afterwards); one is as fast
            for a network this small and far faster on a busy machine.
    """

    name: ClassVar[str] = "swarmpilot_mlp"

    def __init__(
        self,
        levels: Sequence[float] = SWARMPILOT_LEVELS,
        hidden: Sequence[int] = (64, 32),
        learning_rate: float = 1e-3,
        batch_size: int = 256,
        max_epochs: int = 200,
        patience: int = 10,
        val_fraction: float = 0.1,
        seed: int = 0,
        num_threads: int = 1,
    ) -> None:
        self.levels = check_levels(levels)
        if len(self.levels) < 2:
            raise ValueError("the quantile head needs at least two levels")
        self.hidden = tuple(int(h) for h in hidden)
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.seed = seed
        self.num_threads = num_threads
        self.features: tuple[str, ...] = REQUEST_FEATURES
        self.x_mean: F64 | None = None
        self.x_std: F64 | None = None
        self.y_mean = 0.0  # of log(y)
        self.y_std = 1.0  # of log(y)
        self.layers: list[tuple[F64, F64]] | None = None
        self.best_epoch = -1
        self.val_loss = float("nan")  # pinball loss of standardized log(y), best epoch

    def _design(self, cols: Columns, n: int) -> F64:
        assert self.x_mean is not None
        assert self.x_std is not None
        x = (numeric_matrix(cols, self.features, n) - self.x_mean) / self.x_std
        return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)

    def fit(self, cols: Columns, y: npt.ArrayLike) -> Self:
        """See :meth:`Baseline.fit`; ``y`` must be strictly positive (seconds).

        Raises:
            ValueError: On a non-positive target or fewer than two rows.
        """
        import torch

        n = n_rows(cols)
        ya = check_target(y, n, positive=True)
        if n < 2:
            raise ValueError("need at least two rows (one for validation)")
        raw = numeric_matrix(cols, self.features, n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN feature columns
            mean, std = np.nanmean(raw, axis=0), np.nanstd(raw, axis=0)
        self.x_mean = np.where(np.isfinite(mean), mean, 0.0)
        self.x_std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        x = self._design(cols, n)
        t = np.log(ya)
        self.y_mean, self.y_std = float(t.mean()), float(t.std()) or 1.0
        z = (t - self.y_mean) / self.y_std

        order = np.random.default_rng(self.seed).permutation(n)
        n_val = min(max(1, round(self.val_fraction * n)), n - 1)
        val, train = order[:n_val], order[n_val:]
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(self.num_threads)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self.layers = self._train(x[train], z[train], x[val], z[val])
        finally:
            torch.set_num_threads(threads)
        return self

    def _train(self, x: F64, z: F64, x_val: F64, z_val: F64) -> list[tuple[F64, F64]]:
        import torch

        widths = [x.shape[1], *self.hidden]
        modules: list[torch.nn.Module] = []
        for a, b in pairwise(widths):
            modules += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        modules.append(torch.nn.Linear(widths[-1], len(self.levels)))
        net = torch.nn.Sequential(*modules)  # float32: float64 is far slower on CPU
        taus = torch.tensor(self.levels, dtype=torch.float32)
        xt, zt, xv, zv = (torch.from_numpy(a.astype(np.float32)) for a in (x, z, x_val, z_val))
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
        best, best_state, stale = float("inf"), copy.deepcopy(net.state_dict()), 0
        for epoch in range(self.max_epochs):
            net.train()
            for idx in torch.split(torch.randperm(len(xt)), self.batch_size):
                opt.zero_grad()
                loss = _pinball_torch(_quantile_head_torch(net(xt[idx])), zt[idx], taus)
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
            net.eval()
            with torch.no_grad():
                val_loss = float(_pinball_torch(_quantile_head_torch(net(xv)), zv, taus))
            if val_loss < best - 1e-6:
                best, stale, self.best_epoch = val_loss, 0, epoch
                best_state = copy.deepcopy(net.state_dict())
            else:
                stale += 1
                if stale >= self.patience:
                    break
        self.val_loss = best
        net.load_state_dict(best_state)
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        return [
            (
                m.weight.detach().numpy().T.astype(np.float64),
                m.bias.detach().numpy().astype(np.float64),
            )
            for m in linears
        ]

    def predict(self, cols: Columns) -> F64:
        """See :meth:`Baseline.predict` (quantiles in seconds at :attr:`levels`)."""
        self._require_fitted(self.layers, self.x_mean)
        assert self.layers is not None
        n = n_rows(cols)
        h = self._design(cols, n)
        for w, b in self.layers[:-1]:
            h = np.maximum(h @ w + b, 0.0)
        w, b = self.layers[-1]
        z = quantile_head(h @ w + b)
        return np.asarray(np.exp(self.y_mean + self.y_std * z), dtype=np.float64)
