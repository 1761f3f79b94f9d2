from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from training.baselines import (
    BASELINES,
    SWARMPILOT_LEVELS,
    Baseline,
    Columns,
    EmpiricalQuantiles,
    GBDTQuantiles,
    NotFittedError,
    SwarmPilotMLP,
)
from training.metrics import coverage, mean_pinball, score

ROOT = Path(__file__).resolve().parents[2]
MINISWEAGENT = ROOT.parent / "shared" / "data" / "agentic" / "minisweagent_calls.csv.gz"
EVAL_LEVELS = (0.1, 0.5, 0.9, 0.95, 0.99)

Cols = dict[str, npt.NDArray[Any]]


def synthetic(n: int, seed: int) -> tuple[Cols, npt.NDArray[np.float64]]:
    """Lognormal latency whose median grows with input tokens, load and a slower device."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(10, 4000, n)
    running = rng.integers(0, 32, n)
    device = rng.choice(np.array(["h100", "a100-80gb"]), n)
    model = rng.choice(np.array(["llama-8b", "qwen-7b"]), n)
    median = 0.2 + tokens / 1000.0 * (1 + running / 16) * np.where(device == "h100", 1.0, 1.6)
    y = median * np.exp(0.3 * rng.standard_normal(n))
    cols: Cols = {
        "served_model": model,
        "device": device,
        "input_tokens": tokens,
        "cached_tokens": rng.integers(0, 10, n),
        "step": rng.integers(0, 20, n),
        "num_running": running,
        "num_waiting": np.zeros(n),
        "kv_cache_util": running / 40,
    }
    return cols, y


@pytest.fixture(scope="module")
def data() -> tuple[Cols, npt.NDArray[np.float64], Cols, npt.NDArray[np.float64]]:
    train, y = synthetic(4000, 0)
    test, y_test = synthetic(2000, 1)
    return train, y, test, y_test


@pytest.fixture(scope="module")
def fitted(
    data: tuple[Cols, npt.NDArray[np.float64], Cols, npt.NDArray[np.float64]],
) -> dict[str, Baseline]:
    train, y, _, _ = data
    return {
        "empirical": EmpiricalQuantiles(levels=SWARMPILOT_LEVELS).fit(train, y),
        "swarmpilot_mlp": SwarmPilotMLP(seed=0).fit(train, y),
        "gbdt": GBDTQuantiles(levels=SWARMPILOT_LEVELS, n_estimators=150).fit(train, y),
    }


def test_registry_names_every_baseline() -> None:
    assert set(BASELINES) == {"empirical", "swarmpilot_mlp", "gbdt"}
    assert all(cls.name == name for name, cls in BASELINES.items())


def test_models_beat_empirical_and_are_calibrated_at_0_9(
    data: tuple[Cols, npt.NDArray[np.float64], Cols, npt.NDArray[np.float64]],
    fitted: dict[str, Baseline],
) -> None:
    _, _, test, y_test = data
    losses = {}
    for name, model in fitted.items():
        q = model.predict(test)
        assert q.shape == (len(y_test), len(SWARMPILOT_LEVELS))
        assert np.all(np.diff(q, axis=1) >= 0)
        losses[name] = mean_pinball(y_test, q, SWARMPILOT_LEVELS)
        cov_90 = coverage(y_test, q)[SWARMPILOT_LEVELS.index(0.9)]
        assert abs(cov_90 - 0.9) < 0.04, (name, cov_90)
    print(losses)
    assert losses["gbdt"] < 0.7 * losses["empirical"]
    assert losses["swarmpilot_mlp"] < 0.7 * losses["empirical"]


def test_predict_at_scores_on_other_levels(
    data: tuple[Cols, npt.NDArray[np.float64], Cols, npt.NDArray[np.float64]],
    fitted: dict[str, Baseline],
) -> None:
    _, _, test, y_test = data
    mlp = fitted["swarmpilot_mlp"]
    native = mlp.predict(test)
    np.testing.assert_array_equal(mlp.predict_at(test, SWARMPILOT_LEVELS), native)
    q = mlp.predict_at(test, EVAL_LEVELS)
    assert q.shape == (len(y_test), len(EVAL_LEVELS))
    assert np.all(q >= 0.0)  # extrapolated left tail clipped at 0
    np.testing.assert_allclose(q[:, 1:], native, rtol=1e-12)
    s = score(y_test, q, EVAL_LEVELS, lower=0.0)
    assert set(s["pinball"]) == {"0.1", "0.5", "0.9", "0.95", "0.99"}


def test_swarmpilot_is_seeded_and_leaves_torch_state_alone(
    data: tuple[Cols, npt.NDArray[np.float64], Cols, npt.NDArray[np.float64]],
    fitted: dict[str, Baseline],
) -> None:
    import torch

    train, y, test, _ = data
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    again = SwarmPilotMLP(seed=0).fit(train, y)
    assert torch.rand(1).item() == before.item()
    assert torch.get_num_threads() == threads
    np.testing.assert_array_equal(again.predict(test), fitted["swarmpilot_mlp"].predict(test))
    assert isinstance(again, SwarmPilotMLP)
    assert 0 <= again.best_epoch < again.max_epochs


def test_swarmpilot_uses_request_features_only(
    data: tuple[Cols, npt.NDArray[np.float64], Cols, npt.NDArray[np.float64]],
    fitted: dict[str, Baseline],
) -> None:
    _, _, test, _ = data
    mlp = fitted["swarmpilot_mlp"]
    extra: Columns = {**test, "wf_prev_latency_s": np.ones(2000), "prompt": ["x"] * 2000}
    np.testing.assert_array_equal(mlp.predict(extra), mlp.predict(test))
    partial = {"input_tokens": [100, None]}  # everything else missing: imputed as the mean
    q = mlp.predict(partial)
    assert q.shape == (2, 4)
    assert np.all(np.isfinite(q))


def test_empirical_matches_numpy_quantiles_per_group() -> None:
    rng = np.random.default_rng(1)
    n = 600
    cols = {
        "served_model": rng.choice(np.array(["a", "b"]), n),
        "device": rng.choice(np.array(["h100", "l4"]), n),
    }
    y = rng.lognormal(0.0, 1.0, n)
    levels = (0.05, 0.5, 0.9, 0.99)
    model = EmpiricalQuantiles(levels=levels).fit(cols, y)
    for m in ("a", "b"):
        for d in ("h100", "l4"):
            mask = (cols["served_model"] == m) & (cols["device"] == d)
            got = model.predict({"served_model": [m], "device": [d]})[0]
            np.testing.assert_array_equal(got, np.quantile(y[mask], levels))
    unseen = model.predict({"served_model": ["c", "a"], "device": ["h100", "tpu"]})
    np.testing.assert_array_equal(unseen, np.tile(np.quantile(y, levels), (2, 1)))
    assert model.predict({"served_model": np.array([], dtype=str)}).shape == (0, 4)


def test_empirical_min_count_falls_back_to_global() -> None:
    cols = {"served_model": ["a"] * 5 + ["b"], "device": ["x"] * 6}
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 100.0])
    model = EmpiricalQuantiles(levels=(0.5,), min_count=2).fit(cols, y)
    assert model.predict({"served_model": ["a", "b"], "device": ["x", "x"]}).tolist() == [
        [3.0],
        [3.5],
    ]


def test_gbdt_handles_unseen_categories_and_missing_columns(
    data: tuple[Cols, npt.NDArray[np.float64], Cols, npt.NDArray[np.float64]],
    fitted: dict[str, Baseline],
) -> None:
    gbdt = fitted["gbdt"]
    rows: Columns = {
        "served_model": ["unknown", None],
        "device": ["tpu-v5", "h100"],
        "input_tokens": [1000, None],
    }
    q = gbdt.predict(rows)
    assert q.shape == (2, len(SWARMPILOT_LEVELS))
    assert np.all(np.isfinite(q))
    assert np.all(np.diff(q, axis=1) >= 0)


def test_gbdt_is_deterministic(
    data: tuple[Cols, npt.NDArray[np.float64], Cols, npt.NDArray[np.float64]],
) -> None:
    train, y, test, _ = data
    a = GBDTQuantiles(levels=(0.5, 0.9), n_estimators=30).fit(train, y)
    b = GBDTQuantiles(levels=(0.5, 0.9), n_estimators=30).fit(train, y)
    np.testing.assert_array_equal(a.predict(test), b.predict(test))


@pytest.mark.parametrize("cls", [EmpiricalQuantiles, SwarmPilotMLP, GBDTQuantiles])
def test_contract_errors(cls: type[Baseline]) -> None:
    model = cls()
    with pytest.raises(NotFittedError):
        model.predict({"input_tokens": [1]})
    with pytest.raises(ValueError, match="shape"):
        model.fit({"input_tokens": [1, 2, 3]}, np.ones(2))
    with pytest.raises(ValueError, match="finite"):
        model.fit({"input_tokens": [1, 2, 3]}, np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="levels"):
        cls(levels=(0.9, 0.5))  # type: ignore[call-arg]


def test_swarmpilot_needs_positive_latency() -> None:
    with pytest.raises(ValueError, match="positive"):
        SwarmPilotMLP().fit({"input_tokens": [1, 2, 3]}, np.array([1.0, 0.0, 2.0]))


def agentic_columns(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "input_tokens": frame["prompt_tokens"].to_numpy(),
        "cached_tokens": frame["cached_tokens"].to_numpy(),
        "step": frame["step"].to_numpy(),
        "served_model": frame["model"].to_numpy(),
        "device": np.full(len(frame), "deepseek-api"),
    }


@pytest.mark.shared_data
@pytest.mark.slow
def test_baselines_on_minisweagent_calls() -> None:
    assert MINISWEAGENT.is_file(), f"shared data missing: {MINISWEAGENT}"
    calls = pd.read_csv(MINISWEAGENT)
    calls = calls[calls["latency_s"].notna()]
    held_out = calls["instance_id"].map(lambda s: zlib.crc32(s.encode()) % 5 == 0).to_numpy()
    train, test = calls[~held_out], calls[held_out]
    y, y_test = train["latency_s"].to_numpy(), test["latency_s"].to_numpy()
    tasks = (test["instance_id"].nunique(), calls["instance_id"].nunique())
    print(f"\ntrain {len(train)} calls, test {len(test)} calls ({tasks[0]} of {tasks[1]} tasks)")
    models: list[Baseline] = [
        EmpiricalQuantiles(levels=EVAL_LEVELS),
        SwarmPilotMLP(),
        GBDTQuantiles(levels=EVAL_LEVELS),
    ]
    scores = {}
    for model in models:
        start = time.perf_counter()
        model.fit(agentic_columns(train), y)
        seconds = time.perf_counter() - start
        q = model.predict_at(agentic_columns(test), EVAL_LEVELS)
        s = scores[model.name] = score(y_test, q, EVAL_LEVELS, lower=0.0)
        print(f"{model.name:15s} fit {seconds:5.1f} s  mean pinball {s['mean_pinball']:.3f}  "
              f"crps {s['crps']:.3f}  calibration error {s['calibration_error']:.3f}")  # fmt: skip
        print("   pinball ", {k: round(v, 3) for k, v in s["pinball"].items()})
        print("   coverage", {k: round(v, 3) for k, v in s["coverage"].items()})
    empirical = scores["empirical"]["mean_pinball"]
    assert 1.5 <= empirical <= 2.0
    assert scores["gbdt"]["mean_pinball"] < empirical
    assert scores["swarmpilot_mlp"]["mean_pinball"] < 1.1 * empirical
    for name in ("empirical", "gbdt"):
        assert abs(scores[name]["coverage"]["0.9"] - 0.9) < 0.05, name
    assert all(s["crps"] > 0 for s in scores.values())
