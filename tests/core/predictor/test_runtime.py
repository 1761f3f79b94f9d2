"""The NumPy inference runtime of predictor bundles (no training stack involved)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.predictor import (
    ALL_FEATURES,
    HashedNgrams,
    Predictor,
    PredictorSpec,
    TextSpec,
    numeric_matrix,
    quantile_head,
)


def tiny(with_calibration: bool = False, text: bool = False) -> Predictor:
    rng = np.random.default_rng(0)
    spec = PredictorSpec(
        served_models=("m",),
        numeric=("log_input_tokens", "has_device_spec"),
        devices=("h100-sxm", "deepseek-api"),
        hidden=(4,),
        levels=(0.1, 0.5, 0.9),
        text=TextSpec(kind="hashed_ngrams", buckets=32, dim=32) if text else TextSpec(),
        projection=3 if text else 0,
        calibration_groups=("*", "none|h100-sxm") if with_calibration else ("*",),
    )
    d_tab = 2 + 2 + 1 + (3 if text else 0)
    arrays = {
        "num_mean": np.array([5.0, 0.5]),
        "num_std": np.array([2.0, 0.5]),
        "layer0_W": rng.normal(size=(d_tab, 4)),
        "layer0_b": rng.normal(size=4),
        "head_W": rng.normal(size=(4, 3)) * 0.1,
        "head_b": np.array([0.0, 0.0, 0.0]),
    }
    if text:
        arrays["text_W"] = rng.normal(size=(32, 3))
        arrays["text_b"] = np.zeros(3)
    if with_calibration:
        arrays["cal_offsets"] = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    return Predictor(spec, arrays)


REQUESTS = {
    "served_model": ["m", "m", "other"],
    "device": ["h100-sxm", "deepseek-api", "mystery-gpu"],
    "input_tokens": [100, None, 5000],
    "prompt": ["fix the bug", None, "write a poem"],
}


def test_head_never_crosses() -> None:
    raw = np.array([[0.0, -50.0, 3.0], [2.0, 1.0, -1.0]])
    q = quantile_head(raw)
    assert np.all(np.diff(q, axis=1) > 0)
    assert q[0, 0] == 0.0
    assert q[0, 2] == pytest.approx(np.log1p(np.exp(-50.0)) + np.log1p(np.exp(3.0)))


def test_forecasts_are_valid_distributions_for_unknown_devices_and_missing_inputs() -> None:
    predictor = tiny()
    forecasts = predictor.forecasts(REQUESTS)
    assert len(forecasts) == 3
    for f in forecasts:
        assert f.levels == (0.1, 0.5, 0.9)
        assert 0 < f.ppf(0.5) < f.ppf(0.9)


def test_calibration_offsets_apply_per_group() -> None:
    plain, calibrated = tiny(), tiny(with_calibration=True)
    a = plain.predict_transformed(REQUESTS)
    b = calibrated.predict_transformed(REQUESTS)
    np.testing.assert_allclose(b[0], a[0] + 1.0)  # group none|h100-sxm
    np.testing.assert_allclose(b[1:], a[1:])  # global offsets are zero


def test_a_small_group_takes_its_prompt_class_offsets_before_the_global_ones() -> None:
    base = tiny(with_calibration=True)
    spec = base.spec.model_copy(update={"calibration_groups": ("*", "agent|h100-sxm", "agent|*")})
    arrays = {**base.arrays, "cal_offsets": np.array([[0.0] * 3, [1.0] * 3, [2.0] * 3])}
    cols = {**REQUESTS, "prompt_class": ["agent", "agent", "chat"]}
    q = Predictor(spec, arrays).predict_transformed(cols)
    a = tiny().predict_transformed(cols)
    np.testing.assert_allclose(q[0], a[0] + 1.0)  # agent on h100-sxm: its own group
    np.testing.assert_allclose(q[1], a[1] + 2.0)  # agent elsewhere: the class's offsets
    np.testing.assert_allclose(q[2], a[2])  # another class: global


def test_calibration_by_served_model_picks_each_models_offsets() -> None:
    base = tiny(with_calibration=True)
    spec = base.spec.model_copy(
        update={"calibration_groups": ("*", "model:m"), "calibration_by": "served_model"}
    )
    arrays = {**base.arrays, "cal_offsets": np.array([[0.5, 0.5, 0.5], [-1.0, -1.0, -1.0]])}
    q = Predictor(spec, arrays).predict_transformed(REQUESTS)
    a = tiny().predict_transformed(REQUESTS)
    np.testing.assert_allclose(q[:2], a[:2] - 1.0)  # served model "m": its own offsets
    np.testing.assert_allclose(q[2], a[2] + 0.5)  # unknown model "other": global


def test_repeated_prompts_are_featurized_once_with_identical_results() -> None:
    predictor = tiny(text=True)
    calls: list[int] = []
    featurizer = predictor._text
    assert featurizer is not None
    original = featurizer.transform

    def counting(texts: list[str | None]) -> np.ndarray:
        calls.append(len(texts))
        return original(texts)

    featurizer.transform = counting  # type: ignore[method-assign,assignment]
    prompts = ["fix the bug", None, "write a poem", "fix the bug", "", "write a poem"]
    cols = {"prompt": prompts, "served_model": ["m"] * 6}
    text = predictor.projected_text(cols, 6)
    assert calls == [2]
    one_by_one = np.concatenate([predictor.projected_text({"prompt": [p]}, 1) for p in prompts])
    np.testing.assert_allclose(text, one_by_one)
    assert np.all(text[[1, 4]] == 0.0)


def test_text_features_change_predictions_and_missing_prompt_is_zero(tmp_path: Path) -> None:
    predictor = tiny(text=True)
    text = predictor.projected_text(REQUESTS, 3)
    assert np.all(text[1] == 0.0)
    raw = HashedNgrams(32).transform(["fix the bug"])
    np.testing.assert_allclose(text[0], raw[0] @ predictor.arrays["text_W"], rtol=1e-6)
    loaded = Predictor.load(predictor.save(tmp_path / "b"))
    np.testing.assert_allclose(loaded.predict(REQUESTS), predictor.predict(REQUESTS))


def test_prompt_class_from_client_overrides_centroids() -> None:
    predictor = tiny(text=True)
    arrays = dict(predictor.arrays)
    arrays["class_centroids"] = np.zeros((2, 3))
    arrays["class_centroids"][1] = 100.0
    p = Predictor(predictor.spec, arrays)
    cols = {**REQUESTS, "prompt_class": [None, "agent", None]}
    assert p.prompt_classes(cols, 3) == ["c0", "agent", "c0"]


def test_numeric_features_are_finite_or_nan() -> None:
    cols = {
        **REQUESTS,
        "cached_tokens": [50, None, 0],
        "step": [0, 3, None],
        "ep_completions": [0, 10, None],
        "ep_median_tokens_per_s": [None, 20.0, 5.0],
        "wf_prev_latency_s": [None, 2.0, None],
    }
    m = numeric_matrix(cols, ALL_FEATURES, 3)
    assert m.shape == (3, len(ALL_FEATURES))
    assert not np.any(np.isinf(m))
    names = list(ALL_FEATURES)
    assert m[0, names.index("cached_fraction")] == 0.5
    assert m[1, names.index("has_prev_call")] == 1.0
    assert m[2, names.index("has_device_spec")] == 0.0
    assert m[0, names.index("device_log_bandwidth")] == pytest.approx(np.log(3350.0))


def test_runtime_does_not_import_the_training_stack() -> None:
    import subprocess

    code = (
        "import sys, numpy as np; from core.predictor import Predictor; "
        "print(sorted(m for m in ('torch','lightning','optuna','mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_one_request_alone_is_forecast_as_in_a_batch() -> None:
    predictor = tiny(with_calibration=True, text=True)
    batch = predictor.predict(REQUESTS)
    columns: dict[str, list[Any]] = {k: list(v) for k, v in REQUESTS.items()}  # type: ignore[call-overload]
    for i in range(3):
        alone = predictor.predict({k: [v[i]] for k, v in columns.items()})
        # float32 layers: a row alone and in a batch agree to float32 precision
        np.testing.assert_allclose(alone[0], batch[i], rtol=1e-6)
