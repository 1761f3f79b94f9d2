"""The MLflow pyfunc flavor of a tailcast predictor.

The registered model's artifact is the predictor bundle directory; this wrapper
loads it with :class:`core.predictor.Predictor` and answers a DataFrame of requests
with one column per quantile level (``q0.5`` …, in target units).
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from core.predictor import Predictor

BUNDLE_ARTIFACT = "bundle"


def quantile_columns(levels: tuple[float, ...]) -> list[str]:
    """Output column names: ``q`` + the level (``q0.9``)."""
    return [f"q{level:g}" for level in levels]


class TailcastPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Pyfunc wrapper: requests DataFrame in, quantile DataFrame out."""

    def load_context(self, context: Any) -> None:
        """Load the bundle artifact."""
        self.predictor = Predictor.load(context.artifacts[BUNDLE_ARTIFACT])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        """Predict quantiles for every row of ``model_input``."""
        cols = {
            c: model_input[c].to_numpy(dtype=object if model_input[c].dtype == object else None)
            for c in model_input.columns
        }
        cols = {
            k: np.where(pd.isna(v), None, v) if v.dtype == object else v for k, v in cols.items()
        }
        q = self.predictor.predict(cols, len(model_input))
        return pd.DataFrame(q, columns=quantile_columns(self.predictor.spec.levels))
