"""Cross-fitted ensembles: the merged bundle averages its members; out-of-fold calibration."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from core.predictor import HashedNgrams, Predictor, TextSpec
from training import fit_network, group_keys, split_by_group
from training._calibrate import calibrate
from training._ensemble import cross_fit, inner_folds, merge_members
from training.metrics import coverage

if TYPE_CHECKING:
    from _synthetic import FAST, synthetic
else:
    from tests.training._synthetic import FAST, synthetic


def _members(k: int, hidden: tuple[int, ...], text: bool) -> tuple[list[Predictor], object]:
    data = synthetic(1200)
    split = split_by_group(group_keys(data.cols))
    config = FAST.model_copy(update={"hidden": hidden, "max_epochs": 3})
    if text:
        data.text = HashedNgrams(64).transform(list(data.cols["prompt"])).astype(np.float64)
        config = config.model_copy(
            update={"text": TextSpec(kind="hashed_ngrams", buckets=64), "projection": 4}
        )
    members = [
        fit_network(
            data,
            split.train,
            split.val,
            config.model_copy(update={"seed": j}),
            standardize=split.train,
        )[0]
        for j in range(k)
    ]
    return members, data


@pytest.mark.slow
@pytest.mark.parametrize(
    ("hidden", "text"), [((16,), True), ((8, 8), False), ((), True), ((8, 4, 8), True)]
)
def test_merged_bundle_is_the_mean_of_its_members(
    tmp_path: Path, hidden: tuple[int, ...], text: bool
) -> None:
    members, data = _members(3, hidden, text)
    merged = merge_members(members)
    assert merged.spec.members == 3
    assert merged.spec.projection == 3 * members[0].spec.projection
    cols = data.rows(np.arange(200))  # type: ignore[attr-defined]
    expected = np.mean([m.predict_transformed(cols, 200) for m in members], axis=0)
    # float32 networks: members and the merged block sum in different orders
    np.testing.assert_allclose(merged.predict_transformed(cols, 200), expected, atol=1e-5)
    single = data.rows(np.array([7]))  # type: ignore[attr-defined]
    np.testing.assert_allclose(merged.predict_transformed(single, 1), expected[7:8], atol=1e-5)
    loaded = Predictor.load(merged.save(tmp_path / "bundle"))
    np.testing.assert_allclose(loaded.predict(cols, 200), merged.predict(cols, 200), rtol=1e-9)
    assert np.all(np.diff(loaded.predict(cols, 200), axis=1) >= 0)


def test_merge_refuses_members_that_differ() -> None:
    with pytest.raises(ValueError, match="no members"):
        merge_members([])


def test_inner_folds_keep_each_group_in_one_fold() -> None:
    groups = [f"task{i % 37}" for i in range(1000)]
    folds = inner_folds(groups, 5)
    assert set(folds.tolist()) == set(range(5))
    for g in set(groups):
        assert len({f for gg, f in zip(groups, folds, strict=True) if gg == g}) == 1


@pytest.mark.slow
def test_cross_fit_calibrates_on_out_of_fold_quantiles() -> None:
    data = synthetic(3000)
    groups = group_keys(data.cols)
    split = split_by_group(groups)
    rows = np.sort(np.concatenate([split.train, split.val, split.cal]))
    data.text = np.zeros((data.n, 0))
    fit = cross_fit(data, rows, [groups[i] for i in rows], FAST, 4)
    assert fit.predictor.spec.members == 4
    assert len(fit.val_losses) == 4
    assert fit.oof.shape == (len(rows), len(FAST.levels))
    predictor = calibrate(fit.predictor, data, rows, prompt_classes=0, quantiles=fit.oof)
    q = predictor.predict(data.rows(split.test), len(split.test))
    cov = coverage(data.y[split.test], q)
    for level, got in zip(FAST.levels, cov, strict=True):
        assert abs(got - level) < 0.06, (level, got)
    by_members = fit.affordable(lambda p: 100.0 * p.spec.members, 250.0)
    assert by_members.spec.members == 2
    assert fit.affordable(lambda p: 1e9, 1.0).spec.members == 1
    assert fit.affordable(lambda p: 1e9, None).spec.members == 4
    with pytest.raises(ValueError, match="at least 2"):
        cross_fit(data, rows, [groups[i] for i in rows], FAST, 1)
