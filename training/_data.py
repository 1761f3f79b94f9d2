"""Training data: columns, target, group-wise splits.

Splits are by *group* so that no workflow task is in two folds: a record's group is
its ``workflow_id`` with any ``<run>/`` prefix removed (the same task re-run in another
benchmark run stays in one fold); without a workflow, its prompt (the same prompt
sent to several models stays in one fold); else its ``request_id``. Fold membership is a hash
of the group key, so it is stable across runs and machines: a new model and the
champion are compared on the same held-out records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: Fractions of groups in each fold (train, validation, calibration, test).
FOLDS: tuple[tuple[str, float], ...] = (("train", 0.6), ("val", 0.1), ("cal", 0.1), ("test", 0.2))


def group_keys(cols: Mapping[str, Any]) -> list[str]:
    """The split group of each record (task identity)."""
    n = len(cols["request_id"])
    workflows = cols.get("workflow_id")
    workflows = [None] * n if workflows is None else workflows
    prompts = cols.get("prompt_sha256")
    if prompts is None:
        prompts = cols.get("prompt")
    prompts = [None] * n if prompts is None else prompts
    return [
        str(w).split("/", 1)[-1] if w else (f"prompt:{p}" if p else str(r))
        for w, p, r in zip(workflows, prompts, cols["request_id"], strict=True)
    ]


def _unit_hash(key: str, salt: str) -> float:
    digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Split:
    """Row indices of each fold."""

    train: I64
    val: I64
    cal: I64
    test: I64

    def sizes(self) -> dict[str, int]:
        """Rows per fold."""
        return {k: len(getattr(self, k)) for k in ("train", "val", "cal", "test")}


def split_by_group(
    groups: Sequence[str], salt: str = "tailcast-v1", *, fold: int | None = None, folds: int = 5
) -> Split:
    """Assign each row to a fold by a stable hash of its group.

    Without ``fold``, the groups are split by :data:`FOLDS` (the held-out test fold is
    the last 20% of the hash range). With ``fold`` = k, the test fold is the k-th of
    ``folds`` equal slices of the hash range (cross-validation: every group is tested
    in exactly one of the ``folds`` splits), and the other groups are split between
    train, validation and calibration in :data:`FOLDS`' proportions.

    >>> s = split_by_group([f"task{i % 50}" for i in range(1000)])
    >>> sum(s.sizes().values())
    1000
    >>> tests = [set(split_by_group([f"t{i}" for i in range(300)], fold=k).test) for k in range(5)]
    >>> sorted(set().union(*tests)) == list(range(300)), sum(len(t) for t in tests)
    (True, 300)

    Raises:
        ValueError: ``fold`` outside ``[0, folds)``.
    """
    u = np.array([_unit_hash(g, salt) for g in groups])
    edges = np.cumsum([f for _, f in FOLDS])
    if fold is None:
        fold_of = np.searchsorted(edges, u, side="right")
    else:
        if not 0 <= fold < folds:
            raise ValueError(f"fold must lie in [0, {folds}) (got {fold})")
        lo, hi = fold / folds, (fold + 1) / folds
        test = (u >= lo) & (u < hi)
        # The rest of the hash range, rescaled to [0, 1), then split like FOLDS' first three.
        rest = np.where(u < lo, u, u - (hi - lo)) / (1.0 - (hi - lo))
        fold_of = np.searchsorted(edges[:-1] / edges[-2], rest, side="right")
        fold_of = np.where(test, len(FOLDS) - 1, np.minimum(fold_of, len(FOLDS) - 2))
    idx = [np.flatnonzero(fold_of == k).astype(np.int64) for k in range(len(FOLDS))]
    return Split(*idx)


@dataclass
class TrainingData:
    """Columns (name -> array or list), target values and row count.

    Attributes:
        cols: Training-frame columns (record fields, endpoint and workflow features).
        y: Target in its units (e.g. seconds), shape (n,).
        text: Raw text features for the current text variant, set by the caller.
    """

    cols: dict[str, Any]
    y: F64
    text: F64 = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def n(self) -> int:
        """Number of rows."""
        return len(self.y)

    def rows(self, index: I64) -> dict[str, Any]:
        """The columns restricted to ``index``."""
        out: dict[str, Any] = {}
        for name, values in self.cols.items():
            arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
            out[name] = arr[index]
        return out

    @classmethod
    def from_arrow(
        cls, table: pa.Table, target: str, strictly_positive: bool = True
    ) -> TrainingData:
        """Columns of an Arrow training frame; rows with an unusable target dropped.

        Args:
            table: A training frame.
            target: The target column.
            strictly_positive: Keep only targets > 0 (for a log transform), else >= 0.
        """
        cols: dict[str, Any] = {}
        for name in table.column_names:
            column = table.column(name)
            if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
                cols[name] = column.to_numpy(zero_copy_only=False).astype(np.float64)
            else:
                cols[name] = np.asarray(column.to_pylist(), dtype=object)
        y = np.asarray(cols[target], dtype=np.float64)
        keep = np.isfinite(y) & ((y > 0) if strictly_positive else (y >= 0))
        cols = {k: v[keep] for k, v in cols.items()}
        return cls(cols=cols, y=y[keep])
