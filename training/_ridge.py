"""The ridge text head: a prompt's effect on the target, learned from text in closed form.

When many rows share one prompt (one instruction answered by many served models), a
text projection trained by gradient descent with the network sees only a few hundred
distinct prompts and memorizes them. The ridge head fits the prompt effect once, with
the structure of the data:

1. location of each served model: mean transformed target of its training rows;
2. prompt effect target: the residual ``y - location`` averaged over each prompt's
   training rows (every prompt weighs the same, however many models answered it);
3. a ridge regression of that effect on the raw text features (standardized), its
   penalty chosen by K-fold cross-validation over prompts;
4. cross-fitting: every training row gets the out-of-fold prediction for its prompt,
   so the network learns how far to trust the estimate on prompts the head has not
   seen, as it will be used at prediction time. Other rows get the full fit.

The head is exported as a width-1 linear projection ``text_W`` ``(d, 1)``, ``text_b``
``(1,)`` in the raw feature space, so :class:`core.predictor.Predictor` runs it
unchanged (for ``static_table`` the table is pre-multiplied, as for a learned head).

>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(400, 5))
>>> effect = x[:, 0] - 0.5 * x[:, 1]
>>> head = fit_ridge_head(x, effect + 0.1 * rng.normal(size=400), np.arange(400) % 40)
>>> bool(np.corrcoef(head.predict(x), effect)[0, 1] > 0.99)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Ridge penalties tried (on standardized features, per prompt).
ALPHAS: tuple[float, ...] = (1.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)


@dataclass(frozen=True)
class RidgeHead:
    """A fitted ridge head.

    Attributes:
        weights: ``(d,)`` weights on the raw features.
        bias: Intercept.
        alpha: The chosen penalty.
        cv_r2: Cross-validated R² of the prompt effect at ``alpha``.
        oof: Out-of-fold prediction of each training prompt, ``(n_prompts,)``.
    """

    weights: F64
    bias: float
    alpha: float
    cv_r2: float
    oof: F64

    def predict(self, x: F64) -> F64:
        """Predicted effect of each row of raw features ``x`` ``(n, d)``."""
        return np.asarray(x @ self.weights + self.bias, dtype=np.float64)


def _solve(x: F64, y: F64, alpha: float) -> tuple[F64, float]:
    """Ridge on standardized columns; weights and bias mapped back to raw features."""
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd < 1e-9] = 1.0
    z = (x - mu) / sd
    ym = float(y.mean())
    w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - ym)) / sd
    return w, ym - float(mu @ w)


def fit_ridge_head(x: F64, y: F64, folds: I64, alphas: Sequence[float] = ALPHAS) -> RidgeHead:
    """Fit the head on one row per prompt, choosing the penalty by cross-validation.

    Args:
        x: Raw text features per prompt, ``(n, d)``.
        y: Prompt effect per prompt, ``(n,)``.
        folds: Cross-validation fold of each prompt (integers; at least 2 distinct).
        alphas: Penalties tried.

    Returns:
        The head refitted on all prompts at the best penalty, with its out-of-fold
        predictions at that penalty.
    """
    labels = np.unique(folds)
    if len(labels) < 2:
        raise ValueError("the ridge head needs at least two cross-validation folds")
    best: tuple[float, float, F64] | None = None
    total = float(np.sum((y - y.mean()) ** 2)) or 1.0
    for alpha in alphas:
        oof = np.empty(len(y))
        for label in labels:
            held = folds == label
            w, b = _solve(x[~held], y[~held], alpha)
            oof[held] = x[held] @ w + b
        r2 = 1.0 - float(np.sum((y - oof) ** 2)) / total
        if best is None or r2 > best[1]:
            best = (alpha, r2, oof)
    assert best is not None
    alpha, r2, oof = best
    w, b = _solve(x, y, alpha)
    return RidgeHead(weights=w, bias=b, alpha=alpha, cv_r2=r2, oof=oof)


def prompt_effect_feature(
    text: F64,
    y: F64,
    served_models: Sequence[str],
    prompts: Sequence[str | None],
    train: I64,
    *,
    n_folds: int = 5,
    seed: int = 0,
) -> tuple[F64, RidgeHead | None]:
    """The cross-fitted prompt-effect feature of every row, and the head behind it.

    Args:
        text: Raw text features of every row, ``(n, d)``.
        y: Transformed target of every row.
        served_models: Served model of every row.
        prompts: Prompt of every row (empty or ``None``: no prompt, feature 0).
        train: Rows the head is fitted on.
        n_folds: Cross-validation folds over training prompts.
        seed: Seed of the fold assignment.

    Returns:
        ``(feature (n, 1), head)``; the head is ``None`` (feature all 0) when fewer
        than ``2 * n_folds`` training prompts exist.
    """
    n = len(y)
    out = np.zeros((n, 1))
    models = np.asarray(served_models, dtype=object).astype(str)
    has = np.array([bool(p) for p in prompts])
    rows = train[has[train]]
    location: dict[str, float] = {}
    for m in np.unique(models[train]):
        location[m] = float(y[train][models[train] == m].mean())
    keys = np.asarray([str(p) if p else "" for p in prompts], dtype=object)
    uniq, which = np.unique(keys[rows], return_inverse=True)
    if len(uniq) < 2 * n_folds:
        return out, None
    residual = y[rows] - np.array([location[m] for m in models[rows]])
    counts = np.bincount(which, minlength=len(uniq)).astype(np.float64)
    effect = np.bincount(which, residual, minlength=len(uniq)) / counts
    first = np.zeros(len(uniq), dtype=np.int64)
    first[which[::-1]] = rows[::-1]  # first training row of each prompt
    folds = np.random.default_rng(seed).permutation(len(uniq)) % n_folds
    head = fit_ridge_head(text[first], effect, folds.astype(np.int64))
    out[has, 0] = head.predict(text[has])
    out[rows, 0] = head.oof[which]
    return out, head
