"""The fallback predictor: empirical quantiles per (prompt class, device) in bundle form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.predictor import Predictor
from training import FALLBACK_KIND, fallback_predictor
from training.metrics import coverage

LEVELS = (0.1, 0.5, 0.9)
#: (device, prompt class) -> median latency (s) of a lognormal group.
MEDIANS = {("h100", "chat"): 1.0, ("h100", "code"): 4.0, ("a100", "chat"): 2.5}


def _rows(n_per_group: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    latency: list[float] = []
    devices: list[str] = []
    classes: list[str] = []
    for (device, cls), median in MEDIANS.items():
        latency += list(median * np.exp(rng.normal(0.0, 0.5, n_per_group)))
        devices += [device] * n_per_group
        classes += [cls] * n_per_group
    return {"latency_s": latency, "device": devices, "prompt_class": classes}


def _predict(p: Predictor, rows: dict[str, Any]) -> np.ndarray:
    n = len(rows["latency_s"])
    return p.predict({**rows, "served_model": ["m"] * n}, n)


def test_held_out_coverage_holds_in_every_group() -> None:
    model = fallback_predictor(_rows(2000, seed=0), "m", levels=LEVELS)
    test = _rows(2000, seed=1)
    q = _predict(model, test)
    assert np.all(np.diff(q, axis=1) > 0)  # quantiles never cross
    keys = list(zip(test["device"], test["prompt_class"], strict=True))
    for group in MEDIANS:
        rows = np.array([k == group for k in keys])
        y = np.asarray(test["latency_s"])[rows]
        assert np.allclose(coverage(y, q[rows]), LEVELS, atol=0.03), group
        assert np.median(q[rows, 1]) == pytest.approx(MEDIANS[group], rel=0.06)


def test_unknown_device_gets_the_pooled_quantiles_and_unknown_class_the_device_ones() -> None:
    rows = _rows(500, seed=2)
    model = fallback_predictor(rows, "m", levels=LEVELS)
    pooled = np.quantile(rows["latency_s"], LEVELS)
    h100 = np.quantile(np.asarray(rows["latency_s"])[np.asarray(rows["device"]) == "h100"], LEVELS)
    q = model.predict(
        {"device": ["tpu-v9", "h100"], "prompt_class": [None, "unseen"], "served_model": ["m"] * 2}
    )
    assert np.allclose(q[0], pooled, rtol=0.02)
    assert np.allclose(q[1], h100, rtol=0.02)


def test_small_groups_fall_back_to_the_coarser_level() -> None:
    rows = _rows(500, seed=3)
    rows["latency_s"] += [100.0] * 5
    rows["device"] += ["l4"] * 5
    rows["prompt_class"] += ["chat"] * 5
    model = fallback_predictor(rows, "m", levels=LEVELS, min_count=20)
    assert "l4" not in model.spec.devices
    assert model.spec.calibration_groups[0] == "*"
    assert "chat|l4" not in model.spec.calibration_groups


def test_it_is_an_ordinary_bundle(tmp_path: Path) -> None:
    rows = _rows(300, seed=4)
    model = fallback_predictor(rows, "m", levels=LEVELS)
    assert model.spec.metadata["kind"] == FALLBACK_KIND
    loaded = Predictor.load(model.save(tmp_path / "bundle"))
    assert np.allclose(_predict(loaded, rows), _predict(model, rows))
    (forecast,) = loaded.forecasts({"device": ["a100"], "served_model": ["m"]})
    assert forecast.levels == LEVELS


def test_rows_without_a_positive_latency_are_refused() -> None:
    with pytest.raises(ValueError, match="positive latency"):
        fallback_predictor({"latency_s": [0.0, float("nan")], "device": ["a", "b"]}, "m")
