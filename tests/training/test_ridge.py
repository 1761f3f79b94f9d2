"""The ridge prompt-effect head, its use in a network, and per-model calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.predictor import HashedNgrams, Predictor, TextSpec
from training import (
    SearchSpace,
    TrainConfig,
    TrainingData,
    fit_network,
    group_keys,
    split_by_group,
)
from training._calibrate import calibrate
from training._ridge import fit_ridge_head, prompt_effect_feature
from training._search import run_search
from training.metrics import coverage

WORDS = [f"w{i}" for i in range(40)]
RIDGE = TrainConfig(
    hidden=(16,),
    max_epochs=20,
    patience=5,
    lr=1e-2,
    numeric=(),
    text=TextSpec(kind="hashed_ngrams", buckets=64, ngram_max=1),
    text_head="ridge",
)


def shared_prompts(
    n_prompts: int = 120, models: int = 12, seed: int = 0
) -> tuple[TrainingData, np.ndarray]:
    """Every prompt answered by every model: log y = model location + prompt effect + noise.

    A prompt is 4 distinct words out of 40; its effect is the sum of its words' weights.
    ``data.text`` holds the prompts' hashed word features (what the runtime computes
    for ``TextSpec(kind="hashed_ngrams", buckets=64, ngram_max=1)``); model locations
    span 3 in log space.
    """
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=len(WORDS)) / 2.0
    picks = [rng.choice(len(WORDS), 4, replace=False) for _ in range(n_prompts)]
    texts = [" ".join(WORDS[j] for j in pick) for pick in picks]
    effect = np.array([weight[pick].sum() for pick in picks])
    location = np.linspace(3.0, 6.0, models)
    p = np.repeat(np.arange(n_prompts), models)
    m = np.tile(np.arange(models), n_prompts)
    y = np.exp(location[m] + effect[p] + 0.2 * rng.standard_normal(len(p)))
    cols = {
        "request_id": np.array([f"r{i}" for i in range(len(p))], dtype=object),
        "served_model": np.array([f"model{j}" for j in m], dtype=object),
        "device": np.array(["unknown"] * len(p), dtype=object),
        "prompt": np.array([texts[i] for i in p], dtype=object),
    }
    data = TrainingData(cols=cols, y=y)
    data.text = HashedNgrams(64, ngram_max=1).transform(list(cols["prompt"])).astype(np.float64)
    return data, effect[p]


def test_ridge_head_recovers_a_linear_effect_and_shrinks_noise() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 20))
    folds = (np.arange(300) % 5).astype(np.int64)
    signal = fit_ridge_head(x, x[:, 0] + 0.05 * rng.normal(size=300), folds)
    assert signal.cv_r2 > 0.95
    assert abs(signal.weights[0] - 1.0) < 0.05
    noise = fit_ridge_head(x, rng.normal(size=300), folds)
    assert noise.cv_r2 < 0.05
    assert noise.alpha >= 1000.0  # pure noise: the heaviest penalties win
    assert np.abs(noise.weights).max() < 0.05
    with pytest.raises(ValueError, match="two"):
        fit_ridge_head(x, x[:, 0], np.zeros(300, dtype=np.int64))


def test_prompt_effect_removes_model_locations_and_cross_fits_training_rows() -> None:
    data, effect = shared_prompts(n_prompts=300)
    y = np.log(data.y)
    train = np.flatnonzero(np.arange(data.n) < data.n * 0.7).astype(np.int64)
    held = np.setdiff1d(np.arange(data.n), train)
    prompts = list(data.cols["prompt"])
    prompts[-1] = None  # no prompt: no effect
    feature, head = prompt_effect_feature(
        data.text, y, list(data.cols["served_model"]), prompts, train
    )
    assert head is not None
    assert feature.shape == (data.n, 1)
    # The effect, not the model locations (which span 3 log units), is what is learned.
    assert np.corrcoef(feature[held[:-1], 0], effect[held[:-1]])[0, 1] > 0.95
    assert np.abs(feature[held[:-1], 0] - effect[held[:-1]]).mean() < 0.15
    assert feature[-1, 0] == 0.0
    # Training rows carry out-of-fold predictions, the rest the full fit.
    full = head.predict(data.text)
    np.testing.assert_allclose(feature[held[:-1], 0], full[held[:-1]])
    assert not np.allclose(feature[train, 0], full[train])
    # Every row of one training prompt gets the same out-of-fold value.
    first = feature[train[:12], 0]
    np.testing.assert_allclose(first, first[0])


@pytest.mark.slow
def test_ridge_head_network_runs_in_the_numpy_runtime_and_beats_no_text(tmp_path: Path) -> None:
    data, _ = shared_prompts()
    split = split_by_group(group_keys(data.cols))
    config = RIDGE.model_copy(update={"hidden": (32,), "max_epochs": 30, "patience": 6})
    predictor, val = fit_network(data, split.train, split.val, config)
    assert predictor.spec.projection == 1
    assert predictor.spec.text_head == "ridge"
    assert predictor.arrays["text_W"].shape == (64, 1)
    plain, plain_val = fit_network(
        data, split.train, split.val, config.model_copy(update={"text": TextSpec()})
    )
    assert plain.spec.projection == 0
    assert val < 0.7 * plain_val  # the prompt effect is most of the variance
    # The runtime's width-1 projection is the ridge head on the raw features.
    rows = split.test
    cols = data.rows(rows)
    expected = data.text[rows] @ predictor.arrays["text_W"] + predictor.arrays["text_b"]
    np.testing.assert_allclose(predictor.projected_text(cols, len(rows)), expected, atol=1e-9)
    # Held-out prompts: pinball of the runtime's predictions, with and without text.
    levels = np.array(predictor.spec.levels)

    def pinball(p: Predictor) -> float:
        diff = np.log(data.y[rows])[:, None] - p.predict_transformed(cols, len(rows))
        return float(np.maximum(levels * diff, (levels - 1) * diff).mean())

    assert pinball(predictor) < 0.7 * pinball(plain)
    again = Predictor.load(predictor.save(tmp_path / "bundle"))
    assert again.spec.text_head == "ridge"
    np.testing.assert_allclose(again.predict(cols, len(rows)), predictor.predict(cols, len(rows)))


@pytest.mark.slow
def test_per_model_calibration_fixes_a_model_specific_bias() -> None:
    data, _ = shared_prompts(n_prompts=400, models=4, seed=2)
    split = split_by_group(group_keys(data.cols))
    config = RIDGE
    predictor, _ = fit_network(data, split.train, split.val, config)
    # Model 0 answers 1.0 log units longer on the calibration and test prompts.
    shifted = data.y.copy()
    is0 = np.asarray(data.cols["served_model"]) == "model0"
    rest = np.ones(data.n, bool)
    rest[split.train] = False
    shifted[is0 & rest] *= np.e
    data = TrainingData(cols=data.cols, y=shifted, text=data.text)
    cal = np.concatenate([split.val, split.cal])
    pooled = calibrate(predictor, data, cal, prompt_classes=0)
    per_model = calibrate(predictor, data, cal, prompt_classes=0, by="served_model", min_group=30)
    assert per_model.spec.calibration_groups[0] == "*"
    assert set(per_model.spec.calibration_groups[1:]) == {f"model:model{j}" for j in range(4)}
    test0 = split.test[is0[split.test]]
    levels = np.array(predictor.spec.levels)
    cols = data.rows(test0)
    err_pooled = np.abs(coverage(data.y[test0], pooled.predict(cols, len(test0))) - levels)
    err_model = np.abs(coverage(data.y[test0], per_model.predict(cols, len(test0))) - levels)
    assert err_pooled.max() > 0.25
    assert err_model.max() < 0.5 * err_pooled.max()
    assert err_model.mean() < 0.06, (err_model, err_pooled)


@pytest.mark.slow
def test_search_tries_every_text_variant_and_selects_the_ridge_head_on_one_objective() -> None:
    data, _ = shared_prompts(n_prompts=150, models=6, seed=3)
    split = split_by_group(group_keys(data.cols))
    hashed = TextSpec(kind="hashed_ngrams", buckets=64, ngram_max=1)
    raw = data.text.copy()  # the search sets data.text per variant

    def provider(spec: TextSpec, prompts: object, keys: object) -> tuple[np.ndarray, None, None]:
        return (raw if spec.kind != "none" else np.zeros((data.n, 0))), None, None

    space = SearchSpace(
        text_variants=(TextSpec(kind="none"), hashed),
        text_heads=("ridge",),
        widths=(16,),
        depth=(1, 1),
        loss_spaces=("transformed", "target"),
        seed_text_variants=True,
    )
    base = RIDGE.model_copy(update={"max_epochs": 12, "objective": "target"})
    result = run_search(
        data,
        split,
        provider,
        base=base,
        space=space,
        trials=3,
        timeout=None,
        storage=None,
        study_name="ridge-search",
    )
    first_two = sorted(t.config.text.kind for t in result.trials[:2])
    assert first_two == ["hashed_ngrams", "none"]  # seeded: each variant once, first
    assert result.selected is not None
    assert result.selected.config.text.kind == "hashed_ngrams"
    assert result.selected.config.text_head == "ridge"
    # One objective for all trials: pinball in target units over the training median,
    # whatever loss space each trial trained in (recomputed here from the predictors).
    median = float(np.median(data.y[split.train]))
    levels = np.array(base.levels)
    for trial in result.trials:
        assert trial.predictor is not None
        q = trial.predictor.predict(data.rows(split.val), len(split.val))
        diff = data.y[split.val][:, None] - q
        loss = float(np.maximum(levels * diff, (levels - 1) * diff).mean()) / median
        assert trial.val_loss == pytest.approx(loss, rel=1e-3)
