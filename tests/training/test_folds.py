"""Cross-validation folds by task group: disjoint, covering, proportioned, stable."""

from __future__ import annotations

import numpy as np
import pytest

from training import TrainRequest, split_by_group

GROUPS = [f"task-{i % 997}" for i in range(20_000)]


def _members(split: object) -> dict[str, set[int]]:
    return {k: set(getattr(split, k).tolist()) for k in ("train", "val", "cal", "test")}


@pytest.mark.parametrize("fold", range(5))
def test_a_fold_partitions_the_rows_and_keeps_each_task_in_one_part(fold: int) -> None:
    parts = _members(split_by_group(GROUPS, fold=fold))
    everything = set().union(*parts.values())
    assert everything == set(range(len(GROUPS)))
    assert sum(len(p) for p in parts.values()) == len(GROUPS)
    owner: dict[str, str] = {}
    for name, rows in parts.items():
        for i in rows:
            assert owner.setdefault(GROUPS[i], name) == name
    # Proportions of groups: test 1/5; the rest 0.6 : 0.1 : 0.1 (tolerance: hash noise).
    n = len(GROUPS)
    assert len(parts["test"]) / n == pytest.approx(0.2, abs=0.04)
    assert len(parts["train"]) / n == pytest.approx(0.6, abs=0.05)
    assert len(parts["val"]) / n == pytest.approx(0.1, abs=0.03)


def test_every_task_is_tested_in_exactly_one_fold() -> None:
    tested = np.zeros(len(GROUPS), dtype=int)
    for k in range(5):
        tested[split_by_group(GROUPS, fold=k).test] += 1
    assert (tested == 1).all()


def test_folds_are_stable_and_the_default_split_is_unchanged() -> None:
    a, b = split_by_group(GROUPS, fold=2), split_by_group(GROUPS, fold=2)
    assert np.array_equal(a.test, b.test)
    default = split_by_group(GROUPS)
    # The fixed split's test fold is the top fifth of the hash range: fold 4.
    assert np.array_equal(default.test, split_by_group(GROUPS, fold=4).test)


def test_a_fold_outside_the_range_is_refused() -> None:
    with pytest.raises(ValueError, match="fold must lie"):
        split_by_group(GROUPS, fold=5)
    assert TrainRequest(served_model="m", test_fold=3).test_fold == 3
