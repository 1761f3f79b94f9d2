"""Cross-fitted ensembles: several networks of one configuration, averaged at prediction.

The selected configuration is refitted ``k`` times on the non-test rows, member ``j``
holding out the ``j``-th of ``k`` slices of the task groups (early stopping on it). Each
row's out-of-fold quantiles (from the one member that never trained on its task) are
its conformal score for calibration, so every non-test task both trains ``k - 1``
members and calibrates the ensemble, instead of 60% training and 20% validating and
calibrating. The members are merged into one bundle whose runtime averages their
quantiles (:attr:`core.predictor.PredictorSpec.members`), which is one forward pass of
a wider network: the hot path stays a few small matrix products.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.predictor import Predictor
from training._data import I64, TrainingData, _unit_hash
from training._fit import TrainConfig, fit_network

F64 = npt.NDArray[np.float64]

#: Salt of the inner folds (independent of the held-out split's hash).
INNER_SALT = "tailcast-inner-v1"


@dataclass(frozen=True)
class CrossFit:
    """A merged ensemble and its out-of-fold predictions.

    Attributes:
        members: The members, uncalibrated, member ``j`` holding out inner fold ``j``.
        rows: The rows it was fitted on (all of them held out by exactly one member).
        oof: Transformed quantiles of ``rows``, each from the member that never trained
            on that row's task group, shape ``(len(rows), K)``.
        val_losses: Each member's best validation loss (on its held-out slice).
    """

    members: tuple[Predictor, ...]
    rows: I64
    oof: F64
    val_losses: tuple[float, ...]

    @property
    def predictor(self) -> Predictor:
        """Every member merged into one uncalibrated bundle."""
        return merge_members(self.members)

    def affordable(
        self, cost_us: Callable[[Predictor], float], budget_us: float | None
    ) -> Predictor:
        """The merge of the most members (in order) whose cost is within the budget.

        The out-of-fold scores stay valid calibration scores for fewer members: each
        is a single member's error on tasks it never saw.

        Args:
            cost_us: Measures a bundle's cost per single request (µs).
            budget_us: The budget (``None``: every member).

        Returns:
            The merged bundle; a single member when even two cost too much.
        """
        for m in range(len(self.members), 1, -1):
            merged = merge_members(self.members[:m])
            if budget_us is None or cost_us(merged) <= budget_us:
                return merged
        return self.members[0]


def inner_folds(groups: Sequence[str], k: int) -> npt.NDArray[np.int64]:
    """The inner fold (0 to ``k - 1``) of each row, by a stable hash of its group.

    >>> f = inner_folds([f"t{i % 40}" for i in range(400)], 4)
    >>> sorted(set(f.tolist())), len(set(zip([f"t{i % 40}" for i in range(400)], f)))
    ([0, 1, 2, 3], 40)
    """
    u = np.array([_unit_hash(g, INNER_SALT) for g in groups])
    return np.minimum((u * k).astype(np.int64), k - 1)


def cross_fit(
    data: TrainingData,
    rows: I64,
    groups: Sequence[str],
    config: TrainConfig,
    k: int,
    *,
    static_table: npt.NDArray[np.float32] | None = None,
    tokenizer_json: str | None = None,
    on_member: Callable[[int, float], None] | None = None,
) -> CrossFit:
    """Fit ``k`` members of ``config`` on ``rows``, each holding out one slice of groups.

    Args:
        data: All rows; ``data.text`` holds the raw text features of ``config.text``.
        rows: The rows to fit and to score out of fold (e.g. every non-test row).
        groups: Task group of each of ``rows`` (no group spans two slices).
        config: The configuration; member ``j`` is seeded ``config.seed + j``.
        k: Members (>= 2).
        static_table: Raw distilled token table, for the ``static_table`` variant.
        tokenizer_json: Its tokenizer.
        on_member: Called with (member index, its validation loss) after each fit.

    Raises:
        ValueError: ``k < 2``, or a slice with no rows (fewer groups than ``k``).
    """
    if k < 2:
        raise ValueError(f"a cross-fit needs at least 2 members (got {k})")
    fold = inner_folds(groups, k)
    members: list[Predictor] = []
    losses: list[float] = []
    oof = np.zeros((len(rows), len(config.levels)))
    for j in range(k):
        held = fold == j
        if not held.any() or held.all():
            raise ValueError(f"inner fold {j} of {k} is empty or everything; too few groups")
        member, loss = fit_network(
            data,
            rows[~held],
            rows[held],
            config.model_copy(update={"seed": config.seed + j}),
            static_table=static_table,
            tokenizer_json=tokenizer_json,
            standardize=rows,
        )
        oof[held] = member.predict_transformed(data.rows(rows[held]), int(held.sum()))
        members.append(member)
        losses.append(loss)
        if on_member:
            on_member(j, loss)
    return CrossFit(tuple(members), rows, oof, tuple(losses))


def merge_members(members: Sequence[Predictor]) -> Predictor:
    """One bundle averaging the quantiles of ``members`` (uncalibrated, one architecture).

    The members must share everything but their weights (spec, standardization); text
    projections are concatenated, the first layer takes the shared input to every
    member's block, deeper layers and heads are stacked per member.

    Raises:
        ValueError: No members, members that differ in their spec or inputs, or
            members that are ensembles already.
    """
    if not members:
        raise ValueError("no members to merge")
    first = members[0]
    spec = first.spec
    for other in members[1:]:
        if other.spec != spec or not np.array_equal(
            other.arrays["num_mean"], first.arrays["num_mean"]
        ):
            raise ValueError("members must share their spec and standardization")
    if spec.members != 1:
        raise ValueError("members must be single networks")
    m = len(members)
    if m == 1:
        return first
    arrays: dict[str, npt.NDArray[np.float64]] = {
        "num_mean": first.arrays["num_mean"],
        "num_std": first.arrays["num_std"],
    }
    text_key = "text_table" if "text_table" in first.arrays else "text_W"
    projection = spec.projection
    if projection:
        arrays[text_key] = np.concatenate([p.arrays[text_key] for p in members], axis=1)
        arrays["text_b"] = np.concatenate([p.arrays["text_b"] for p in members])
    names = [f"layer{i}" for i in range(len(spec.hidden))] + ["head"]
    w0 = [p.arrays[f"{names[0]}_W"].astype(np.float64) for p in members]
    d_tab, width = w0[0].shape[0] - projection, w0[0].shape[1]
    merged = np.zeros((d_tab + m * projection, m * width))
    for j, w in enumerate(w0):
        block = slice(j * width, (j + 1) * width)
        merged[:d_tab, block] = w[:d_tab]
        merged[d_tab + j * projection : d_tab + (j + 1) * projection, block] = w[d_tab:]
    arrays[f"{names[0]}_W"] = merged
    arrays[f"{names[0]}_b"] = np.concatenate([p.arrays[f"{names[0]}_b"] for p in members])
    for name in names[1:]:
        arrays[f"{name}_W"] = np.stack([p.arrays[f"{name}_W"] for p in members])
        arrays[f"{name}_b"] = np.stack([p.arrays[f"{name}_b"] for p in members])
    return Predictor(
        spec.model_copy(update={"members": m, "projection": m * projection}),
        arrays,
        first.tokenizer_json,
    )
