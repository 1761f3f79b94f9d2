"""Reading training-frame columns: row count, numeric and categorical columns.

Columns map a training-frame column name (``served_model``, ``device``,
``input_tokens``, ...) to ``n`` values, as a NumPy array or a list; ``None`` (and NaN)
marks a missing value and an absent column is missing everywhere.

>>> cols = {"input_tokens": [10, None], "device": ["h100", None]}
>>> n_rows(cols), float_column(cols, "input_tokens", 2).tolist()
(2, [10.0, nan])
>>> float_column(cols, "step", 2).tolist(), category_column(cols, "device", 2).tolist()
([nan, nan], ['h100', 'None'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
#: Training-frame columns: name to ``n`` values (array or list, ``None`` for missing).
Columns = Mapping[str, npt.NDArray[Any] | Sequence[Any]]


def n_rows(cols: Columns) -> int:
    """Number of rows: the length of the first column given.

    Raises:
        ValueError: If no column is given.
    """
    for values in cols.values():
        if values is not None:
            return len(values)
    raise ValueError("no columns given")


def float_column(cols: Columns, name: str, n: int) -> F64:
    """Column ``name`` as float64 of shape ``(n,)``, NaN where missing or absent.

    Raises:
        ValueError: If the column does not have ``n`` values.
    """
    values = cols.get(name)
    if values is None:
        return np.full(n, np.nan)
    arr = np.asarray(values)
    if arr.dtype == object:
        arr = np.array([np.nan if v is None else float(v) for v in arr], dtype=np.float64)
    out = arr.astype(np.float64)
    if out.shape != (n,):
        raise ValueError(f"column {name!r} has shape {out.shape}, expected ({n},)")
    return out


def category_column(cols: Columns, name: str, n: int) -> npt.NDArray[np.str_]:
    """Column ``name`` as strings of shape ``(n,)``; missing values read ``"None"``.

    Raises:
        ValueError: If the column does not have ``n`` values.
    """
    values = cols.get(name)
    if values is None:
        return np.full(n, "None")
    out = np.array(
        ["None" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values],
        dtype=np.str_,
    )
    if out.shape != (n,):
        raise ValueError(f"column {name!r} has {out.shape[0]} values, expected {n}")
    return out
