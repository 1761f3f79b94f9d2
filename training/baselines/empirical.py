"""Empirical quantiles per (served_model, device): the no-features baseline.

Each group's prediction is the empirical quantile (``np.quantile``, linear method) of
the training targets of that group; rows of groups unseen in training (or seen fewer
than ``min_count`` times) get the quantiles of all training targets.

>>> cols = {"served_model": ["a", "a", "a", "b"], "device": ["h100"] * 4}
>>> m = EmpiricalQuantiles(levels=(0.5,)).fit(cols, [1.0, 2.0, 3.0, 10.0])
>>> m.predict({"served_model": ["a", "b", "c"], "device": ["h100"] * 3}).tolist()
[[2.0], [10.0], [2.5]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

import numpy as np
import numpy.typing as npt

from core.predictor import DEFAULT_LEVELS
from training.baselines._base import Baseline, check_levels, check_target
from training.baselines._columns import Columns, category_column, n_rows

F64 = npt.NDArray[np.float64]
GROUP_COLUMNS: tuple[str, ...] = ("served_model", "device")


def _group_keys(cols: Columns, n: int) -> list[tuple[str, ...]]:
    parts = [category_column(cols, c, n).tolist() for c in GROUP_COLUMNS]
    return list(zip(*parts, strict=True)) if n else []


class EmpiricalQuantiles(Baseline):
    """Per-group empirical quantiles of the target, with a global fallback.

    Args:
        levels: Quantile levels to predict.
        min_count: Training rows a group needs to get its own quantiles.
    """

    name: ClassVar[str] = "empirical"

    def __init__(self, levels: Sequence[float] = DEFAULT_LEVELS, min_count: int = 1) -> None:
        self.levels = check_levels(levels)
        self.min_count = max(int(min_count), 1)
        self.group_quantiles: dict[tuple[str, ...], F64] = {}
        self.global_quantiles: F64 | None = None

    def fit(self, cols: Columns, y: npt.ArrayLike) -> Self:
        """See :meth:`Baseline.fit`."""
        n = n_rows(cols)
        ya = check_target(y, n)
        lv = np.asarray(self.levels)
        uniq, inverse = np.unique(
            np.array(_group_keys(cols, n), dtype=np.str_), axis=0, return_inverse=True
        )
        inverse = inverse.reshape(-1)
        self.group_quantiles = {}
        for g, key in enumerate(uniq.tolist()):
            members = ya[inverse == g]
            if members.size >= self.min_count:
                self.group_quantiles[tuple(key)] = np.quantile(members, lv)
        self.global_quantiles = np.quantile(ya, lv)
        return self

    def predict(self, cols: Columns) -> F64:
        """See :meth:`Baseline.predict`."""
        self._require_fitted(self.global_quantiles)
        assert self.global_quantiles is not None
        n = n_rows(cols)
        out = np.empty((n, len(self.levels)))
        for i, key in enumerate(_group_keys(cols, n)):
            out[i] = self.group_quantiles.get(key, self.global_quantiles)
        return out
