"""The llm-d-style predictor: LightGBM quantile regression on tokens and load.

One gradient-boosted model per level (``objective="quantile"``) predicts the target
itself (seconds, no log transform, as llm-d's latency predictor does) from the token
counts, the agent step and the server load (``input_tokens``, ``cached_tokens``,
``step``, ``num_running``, ``num_waiting``, ``kv_cache_util``; missing values are
handled by LightGBM) plus ``device`` and ``served_model`` as categorical codes (values
unseen in training count as missing). The per-level predictions are sorted within
each row so the quantiles never cross.

lightgbm is imported by :meth:`GBDTQuantiles.fit` and :meth:`GBDTQuantiles.predict`
only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from core.predictor import DEFAULT_LEVELS
from training.baselines._base import Baseline, check_levels, check_target
from training.baselines._columns import Columns, category_column, float_column, n_rows

if TYPE_CHECKING:
    import lightgbm

F64 = npt.NDArray[np.float64]
#: Numeric columns the model reads (raw values, not the log features).
NUMERIC_COLUMNS: tuple[str, ...] = (
    "input_tokens",
    "cached_tokens",
    "step",
    "num_running",
    "num_waiting",
    "kv_cache_util",
)
#: Columns encoded as LightGBM categorical features.
CATEGORICAL_COLUMNS: tuple[str, ...] = ("device", "served_model")


class GBDTQuantiles(Baseline):
    """LightGBM quantile regression, one booster per level, non-crossing by sorting.

    Args:
        levels: Quantile levels to predict.
        n_estimators: Boosting rounds per level.
        learning_rate: Shrinkage.
        num_leaves: Leaves per tree.
        min_data_in_leaf: Minimum rows per leaf.
        num_threads: LightGBM (OpenMP) threads. One by default: on data this small
            threading gains little, and with two on a busy 2-core machine the OpenMP
            busy-waiting made fits 10-40x slower (the result is the same either way).
        seed: Seed of LightGBM's randomness (training is deterministic).
        params: Extra LightGBM parameters, overriding the ones above.
    """

    name: ClassVar[str] = "gbdt"

    def __init__(
        self,
        levels: Sequence[float] = DEFAULT_LEVELS,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_data_in_leaf: int = 20,
        num_threads: int = 1,
        seed: int = 0,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.levels = check_levels(levels)
        self.n_estimators = n_estimators
        self.params: dict[str, Any] = {
            "objective": "quantile",
            "learning_rate": learning_rate,
            "num_leaves": num_leaves,
            "min_data_in_leaf": min_data_in_leaf,
            "num_threads": num_threads,
            "seed": seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
            **(params or {}),
        }
        self.vocabularies: dict[str, dict[str, int]] = {}
        self.boosters: list[lightgbm.Booster] | None = None

    def _design(self, cols: Columns, n: int) -> F64:
        numeric = [float_column(cols, c, n) for c in NUMERIC_COLUMNS]
        codes = [
            np.array(
                [self.vocabularies[c].get(v, np.nan) for v in category_column(cols, c, n)],
                dtype=np.float64,
            )
            for c in CATEGORICAL_COLUMNS
        ]
        return np.stack([*numeric, *codes], axis=1) if n else np.zeros((0, 8))

    def fit(self, cols: Columns, y: npt.ArrayLike) -> Self:
        """See :meth:`Baseline.fit`."""
        import lightgbm

        n = n_rows(cols)
        ya = check_target(y, n)
        self.vocabularies = {
            c: {v: i for i, v in enumerate(sorted(set(category_column(cols, c, n).tolist())))}
            for c in CATEGORICAL_COLUMNS
        }
        x = self._design(cols, n)
        categorical = list(range(len(NUMERIC_COLUMNS), x.shape[1]))
        data = lightgbm.Dataset(
            x, ya, categorical_feature=categorical, params={"verbosity": -1}, free_raw_data=False
        )
        self.boosters = [
            lightgbm.train({**self.params, "alpha": level}, data, self.n_estimators)
            for level in self.levels
        ]
        return self

    def predict(self, cols: Columns) -> F64:
        """See :meth:`Baseline.predict` (quantiles in target units, rows sorted)."""
        self._require_fitted(self.boosters)
        assert self.boosters is not None
        n = n_rows(cols)
        if n == 0:
            return np.zeros((0, len(self.levels)))
        x = self._design(cols, n)
        q = np.stack([np.asarray(b.predict(x), dtype=np.float64) for b in self.boosters], axis=1)
        return np.sort(q, axis=1)
