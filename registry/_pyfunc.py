"""The MLflow pyfunc flavor of a tailcast predictor.

The registered model's artifact is the predictor bundle directory; this wrapper
loads it with :class:`core.predictor.Predictor` and answers a DataFrame of requests
with one column per quantile level (``q0.5`` …, in target units).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from core.predictor import Predictor

BUNDLE_ARTIFACT = "bundle"

#: Request columns that hold text; every other request column is numeric.
TEXT_COLUMNS = frozenset({"served_model", "device", "prompt", "prompt_class"})


def quantile_columns(levels: Iterable[float]) -> list[str]:
    """Output column names: ``q`` + the level (``q0.9``).

    >>> quantile_columns((0.1, 0.5, 0.99))
    ['q0.1', 'q0.5', 'q0.99']
    """
    return [f"q{level:g}" for level in levels]


def request_columns(frame: pd.DataFrame) -> dict[str, Any]:
    """The columns of a requests DataFrame as the predictor takes them.

    Numeric columns stay NumPy arrays (NaN for missing); every other column becomes
    an object array with ``None`` for missing values, whatever pandas used for them
    (``None``, ``NaN``, ``pd.NA``; pandas 3 reads text columns as ``str`` dtype).

    >>> cols = request_columns(pd.DataFrame({"prompt": ["hi", None], "step": [1, None]}))
    >>> cols["prompt"].tolist(), cols["step"].tolist()
    (['hi', None], [1.0, nan])
    """
    out: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
            series.dtype
        ):
            out[str(name)] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = series.to_numpy(dtype=object)
            missing = pd.isna(values)
            if missing.any():
                values = values.copy()
                values[missing] = None
            out[str(name)] = values
    return out


class TailcastPyfunc(PythonModel):
    """Pyfunc wrapper: requests DataFrame in, quantile DataFrame out."""

    predictor: Predictor

    def load_context(self, context: Any) -> None:
        """Load the bundle artifact."""
        self.predictor = Predictor.load(context.artifacts[BUNDLE_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Predict quantiles for every row of ``model_input``."""
        q = self.predictor.predict(request_columns(model_input), len(model_input))
        return pd.DataFrame(q, columns=quantile_columns(self.predictor.spec.levels))
