"""The input example and model signature a predictor is logged with.

MLflow drops input columns a signature does not name and refuses values its column
types cannot "safely convert"; the signature here accepts every request column a
router may send.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from registry._pyfunc import TEXT_COLUMNS, request_columns

if TYPE_CHECKING:
    from mlflow.models import ModelSignature

EXAMPLE_COLUMNS = (
    "served_model", "device", "prompt", "prompt_class", "input_tokens", "cached_tokens",
    "step", "num_running", "num_waiting", "kv_cache_util", "ep_completions",
    "ep_median_tokens_per_s", "ep_median_latency_s", "wf_prev_output_tokens",
    "wf_prev_latency_s",
)  # fmt: skip


def normalized_example(frame: pd.DataFrame) -> pd.DataFrame:
    """The input example with text columns as objects (None for missing), others float."""
    cols = request_columns(frame)
    return pd.DataFrame(
        {
            name: pd.Series(values, dtype=object)
            if name in TEXT_COLUMNS
            else pd.Series(values, dtype=np.float64)
            for name, values in cols.items()
        }
    )


def signature(example: pd.DataFrame, output: pd.DataFrame) -> ModelSignature:
    """Every request column optional; text columns strings, numeric ones of any type.

    The inputs are :data:`EXAMPLE_COLUMNS` and any other column of the example (MLflow
    drops input columns the signature does not name).

    Numeric columns are not declared ``double``: MLflow's schema enforcement refuses
    int64 input for a double column ("can not safely convert"), and ``long`` refuses
    the float NaN of a missing value; the wrapper converts them itself.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import AnyType

    number = AnyType()  # type: ignore[no-untyped-call]
    inputs = Schema(
        [
            ColSpec(
                DataType.string if name in TEXT_COLUMNS else number,
                str(name),
                required=False,
            )
            for name in dict.fromkeys([*EXAMPLE_COLUMNS, *map(str, example.columns)])
        ]
    )
    outputs = Schema([ColSpec(DataType.double, str(name)) for name in output.columns])
    return ModelSignature(inputs=inputs, outputs=outputs)
