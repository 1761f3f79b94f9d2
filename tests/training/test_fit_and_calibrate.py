"""Training a quantile net, exporting it to the NumPy runtime, calibrating it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from core.predictor import HashedNgrams, Predictor, TextSpec
from training import fit_network, group_keys, split_by_group
from training._calibrate import calibrate, conformal_offsets
from training._search import TrialOutcome, select
from training.metrics import coverage

if TYPE_CHECKING:
    from _synthetic import FAST, synthetic
else:
    from tests.training._synthetic import FAST, synthetic


@pytest.mark.slow
def test_numpy_runtime_matches_the_trained_network(tmp_path: Path) -> None:
    import torch

    from training._module import head_to_quantiles

    data = synthetic()
    split = split_by_group(group_keys(data.cols))
    spec = TextSpec(kind="hashed_ngrams", buckets=64)
    data.text = HashedNgrams(64).transform(list(data.cols["prompt"])).astype(np.float64)
    config = FAST.model_copy(update={"text": spec, "projection": 4})
    predictor, val_loss = fit_network(data, split.train, split.val, config)
    assert np.isfinite(val_loss)
    # Re-run the exported weights in torch and compare with the NumPy runtime.
    rows = split.test[:50]
    cols = data.rows(rows)
    tab, text = predictor.inputs(cols, len(rows))
    a = predictor.arrays
    h = torch.as_tensor(np.concatenate([tab, text], axis=1), dtype=torch.float64)
    for i in range(len(predictor.spec.hidden)):
        h = torch.relu(
            h @ torch.as_tensor(a[f"layer{i}_W"], dtype=torch.float64)
            + torch.as_tensor(a[f"layer{i}_b"], dtype=torch.float64)
        )
    raw = h @ torch.as_tensor(a["head_W"], dtype=torch.float64) + torch.as_tensor(
        a["head_b"], dtype=torch.float64
    )
    expected = head_to_quantiles(raw).numpy()
    np.testing.assert_allclose(predictor.predict_transformed(cols, len(rows)), expected, atol=1e-6)
    # Round trip through the bundle directory.
    again = Predictor.load(predictor.save(tmp_path / "bundle"))
    np.testing.assert_allclose(again.predict(cols, len(rows)), predictor.predict(cols, len(rows)))
    # Quantiles never cross, and the text signal is used: slow prompts predict longer.
    q = predictor.predict(data.cols, data.n)
    assert np.all(np.diff(q, axis=1) >= 0)
    slow = np.array(["detail" in p for p in data.cols["prompt"]])
    median = q[:, predictor.spec.levels.index(0.5)]
    assert np.median(median[slow]) > 2 * np.median(median[~slow])


@pytest.mark.slow
def test_calibration_fixes_a_biased_model() -> None:
    data = synthetic(seed=1)
    split = split_by_group(group_keys(data.cols))
    predictor, _ = fit_network(data, split.train, split.val, FAST)
    # Bias the model: shift every quantile down by 0.5 in log space.
    arrays = dict(predictor.arrays)
    arrays["head_b"] = arrays["head_b"].copy()
    arrays["head_b"][0] -= 0.5
    biased = Predictor(predictor.spec, arrays)
    cal_rows = np.concatenate([split.val, split.cal])
    fixed = calibrate(biased, data, cal_rows, prompt_classes=0)
    levels = np.array(biased.spec.levels)
    y = data.y[split.test]
    before = coverage(y, biased.predict(data.rows(split.test), len(split.test)))
    after = coverage(y, fixed.predict(data.rows(split.test), len(split.test)))
    assert np.abs(before - levels).max() > 0.15
    assert np.abs(after - levels).max() < 0.06


def test_conformal_offsets_exact() -> None:
    scores = np.arange(1, 10, dtype=float).reshape(9, 1)
    # n = 9, tau = 0.5: rank ceil(10 * 0.5) / 9 = 5/9 -> linear quantile at 5/9 of [1..9]
    assert conformal_offsets(scores, (0.5,)).tolist() == [pytest.approx(5.4444444)]
    assert conformal_offsets(scores, (0.1,)).tolist() == [pytest.approx(1.8888889)]


def test_groups_never_straddle_folds() -> None:
    data = synthetic(500)
    keys = np.array(group_keys(data.cols))
    split = split_by_group(keys.tolist())
    folds = [set(keys[getattr(split, f)]) for f in ("train", "val", "cal", "test")]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not folds[i] & folds[j]
    # "<run>/<task>" ids group by task: the same task in two runs lands in one fold.
    assert group_keys({"request_id": ["a", "b"], "workflow_id": ["r1/t", "r2/t"]}) == ["t", "t"]


def test_selection_is_cheapest_within_two_percent_and_within_budget() -> None:
    def t(n: int, loss: float, cost: float) -> TrialOutcome:
        return TrialOutcome(n, FAST, loss, cost)

    trials = [t(0, 1.00, 5000.0), t(1, 1.015, 300.0), t(2, 1.03, 50.0), t(3, 1.2, 40.0)]
    assert select(trials).number == 1
    assert [x.pareto for x in trials] == [True, True, True, True]
    assert select(trials, max_cost_us=100.0).number == 2
    dominated = [t(0, 1.0, 10.0), t(1, 1.1, 20.0)]
    select(dominated)
    assert [x.pareto for x in dominated] == [True, False]


def test_a_rare_device_is_calibrated_with_its_prompt_class_not_the_average() -> None:
    from core.predictor import PredictorSpec
    from training import TrainingData

    rng = np.random.default_rng(3)
    n = 4000
    rare = rng.random(n) < 0.03  # about 120 rows: below min_group
    tight = rng.random(n) < 0.5
    noise = rng.standard_normal(n) * np.where(tight, 0.1, 1.0)
    cols = {
        "served_model": np.array(["m"] * n, dtype=object),
        "device": np.where(rare, "rare-gpu", "h100").astype(object),
        "prompt_class": np.where(tight, "tight", "wide").astype(object),
        "input_tokens": np.full(n, 100.0),
    }
    levels = (0.1, 0.5, 0.9)
    spec = PredictorSpec(
        served_models=("m",),
        numeric=("log_input_tokens",),
        devices=("h100", "rare-gpu"),
        hidden=(2,),
        levels=levels,
        target_transform="log",
    )
    arrays = {
        "num_mean": np.zeros(1),
        "num_std": np.ones(1),
        "layer0_W": np.zeros((4, 2)),
        "layer0_b": np.zeros(2),
        "head_W": np.zeros((2, 3)),
        "head_b": np.array([0.0, -30.0, -30.0]),
    }  # forecasts ~0 in log space at every level: the offsets are the quantiles of noise
    model = Predictor(spec, arrays)
    data = TrainingData(cols=cols, y=np.exp(noise))
    cal = np.arange(n)
    fixed = calibrate(model, data, cal, prompt_classes=0, min_group=200)
    assert {"tight|*", "wide|*", "tight|h100"} <= set(fixed.spec.calibration_groups)
    assert "tight|rare-gpu" not in fixed.spec.calibration_groups
    probe = {k: v[:2] for k, v in cols.items()}
    probe["device"] = np.array(["rare-gpu"] * 2, dtype=object)
    probe["prompt_class"] = np.array(["tight", "wide"], dtype=object)
    q90 = fixed.predict_transformed(probe, 2)[:, 2] - model.predict_transformed(probe, 2)[:, 2]
    # N(0, 0.1) and N(0, 1) have 0.9 quantiles 0.128 and 1.28; the pooled one is ~0.85.
    assert q90[0] == pytest.approx(0.128, abs=0.03)
    assert q90[1] == pytest.approx(1.28, abs=0.15)
