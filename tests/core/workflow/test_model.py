"""The workflow bundle: persistence, latency tables and composed forecasts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from core.workflow import WorkflowModel, bundle_versions, draw

if TYPE_CHECKING:  # mypy maps test directories to top-level modules (no __init__.py)
    from _workflow_fixtures import M, tiny_model
else:
    from tests.core.workflow._workflow_fixtures import M, tiny_model

LEVELS = (0.1, 0.5, 0.9)


def test_latency_tables_follow_the_predictor() -> None:
    tables = tiny_model().latency("m", "d")
    assert tables.by_z.shape == (M, 257)
    # median of call s is exp(0.3 log1p(s)) = (1 + s) ** 0.3; z = 0 is the middle column
    # (to float32 precision: the network runs in float32)
    np.testing.assert_allclose(tables.by_z[:, 128], (1.0 + np.arange(M)) ** 0.3, rtol=1e-6)
    assert np.all(np.diff(tables.by_z, axis=1) >= 0)
    assert np.all(tables.p90 > tables.by_z[:, 128])
    with pytest.raises(KeyError):
        tiny_model().latency("unknown", "d")


def test_compose_exact_parts_and_conditioning() -> None:
    model = tiny_model()
    d = draw(4000, 2 * M, seed=0)
    tables = model.latency("m", "d")
    cdf = model.count_cdf(np.array([0.0, 1.0, 0.0, 0.0], dtype=np.float32), "m")
    start = model.compose(cdf, tables, d, LEVELS)
    # nearest run (6 calls) weighs 1 + 0.5/3; the others 0.5/3, "other" at half the boost
    assert start["call_count"]["quantiles"] == [4, 6, 6]
    assert start["call_count"]["mean"] == pytest.approx(
        (4 * 2 * 0.5 / 3 + 6 * 2 * (1 + 0.5 / 3) + 10 * 0.5 / 3)
        / (2 * 0.5 / 3 + 2 * (1 + 0.5 / 3) + 0.5 / 3)
    )
    assert start["remaining_s"]["quantiles"] == start["total_s"]["quantiles"]
    late = model.compose(cdf, tables, d, LEVELS, steps_done=7, elapsed_s=100.0)
    assert late["call_count"]["quantiles"] == [10, 10, 10]
    # total = elapsed + remaining, exactly
    np.testing.assert_allclose(
        np.array(late["total_s"]["quantiles"]), 100.0 + np.array(late["remaining_s"]["quantiles"])
    )
    assert late["remaining_s"]["quantiles"][2] < start["remaining_s"]["quantiles"][2]
    sampled = model.compose(cdf, tables, d, LEVELS, steps_done=7)
    assert sampled["total_s"]["mean"] > late["remaining_s"]["mean"]
    slow = model.compose(cdf, tables, d, LEVELS, steps_done=7, pending_command="python t.py")
    assert slow["remaining_s"]["mean"] > late["remaining_s"]["mean"] + 1.5
    assert start["sum_of_p90_s"] > start["sum_of_means_s"] > 0


def test_bundle_round_trip(tmp_path: Path) -> None:
    model = tiny_model()
    assert bundle_versions(tmp_path) == []
    path = model.save(tmp_path / "workflows" / "v0003")
    (tmp_path / "workflows" / "v0004").mkdir()  # incomplete: ignored
    assert bundle_versions(tmp_path) == [(3, path)]
    loaded = WorkflowModel.load(path)
    assert loaded.spec == model.spec
    d = draw(500, 2 * M, seed=1)
    cdf = model.count_cdf(np.zeros(4, dtype=np.float32), "m")
    a = model.compose(cdf, model.latency("m", "d"), d, LEVELS, steps_done=2)
    b = loaded.compose(cdf, loaded.latency("m", "d"), d, LEVELS, steps_done=2)
    assert a == b


def test_wrapup_command_switches_the_call_count() -> None:
    base = tiny_model()
    pmf = np.zeros(M)
    pmf[[2, 4]] = 0.5  # D + 1 = 3 or 5: 2 or 4 calls after the wrap-up call
    spec = base.spec.model_copy(update={"wrapup_markers": ("git diff",)})
    model = WorkflowModel(spec, {**base.arrays, "wrapup_pmf": pmf}, base.predictor)
    cdf = model.count_cdf(np.array([0.0, 1.0, 0.0, 0.0], dtype=np.float32), "m")
    commands = ["ls", "python t.py", "cd /t && git diff > patch.txt", "cat patch.txt"]
    assert model.wrapup_step(commands, 4) == 2
    assert model.wrapup_step(commands, 2) is None  # not issued yet at 2 calls done
    assert model.progress_cdf(cdf, 2, commands) is cdf
    wrap = model.progress_cdf(cdf, 4, commands)
    assert wrap.shape == (2 * M,)
    # N = 2 + 1 + D: 5 or 7 calls, evenly
    np.testing.assert_allclose(np.diff(np.concatenate([[0.0], wrap]))[[4, 6]], [0.5, 0.5])
    d = draw(2000, 2 * M, seed=0)
    out = model.compose(cdf, model.latency("m", "d"), d, LEVELS, steps_done=4, commands=commands)
    assert out["call_count"]["quantiles"] == [5, 5, 7]
    plain = model.compose(cdf, model.latency("m", "d"), d, LEVELS, steps_done=4)
    assert plain["call_count"]["quantiles"] == [6, 6, 6]


def test_remaining_levels_interpolate_between_knots() -> None:
    from statistics import NormalDist

    base = tiny_model()
    grid = np.linspace(0.0, 1.0, 101)
    nd = NormalDist()
    inner = [nd.cdf(0.5 + 2.0 * nd.inv_cdf(t)) for t in grid[1:-1]]
    maps = np.stack([grid, np.concatenate([[0.0], inner, [1.0]])])  # shift 0.5, ratio 2
    knots = (float(np.log1p(2)), float(np.log1p(8)))
    spec = base.spec.model_copy(update={"remaining_buckets": (1, 5), "remaining_knots": knots})
    model = WorkflowModel(spec, {**base.arrays, "remaining_pit": maps}, base.predictor)
    levels = np.array([0.1, 0.5, 0.9])

    def at(k: int) -> list[float]:
        return [float(v) for v in model.remaining_levels(levels, k).round(4)]

    # below the first bucket edge and up to the first knot: the identity (row 0)
    assert at(0) == at(1) == at(2) == [0.1, 0.5, 0.9]
    # w = log(5 / 3) / log(3) = 0.465: shift 0.2325, ratio 1.465; then 5 calls done
    assert at(4) == [0.05, 0.5919, 0.9826]
    assert at(5) == [0.038, 0.6238, 0.9919]
    # from the last knot on: the last row
    assert at(8) == at(20) == [0.0196, 0.6915, 0.9989]
    assert model.remaining_levels(np.array([0.0, 1.0]), 4).tolist() == [0.0, 1.0]


def test_remaining_quantiles_follow_the_bucket_map() -> None:
    base = tiny_model()
    grid = np.linspace(0.0, 1.0, 101)
    maps = np.stack([grid, grid**2])  # calls done >= 3: read the samples at tau squared
    spec = base.spec.model_copy(update={"remaining_buckets": (1, 3)})
    model = WorkflowModel(spec, {**base.arrays, "remaining_pit": maps}, base.predictor)
    np.testing.assert_allclose(model.remaining_levels(np.array([0.5, 0.9]), 0), [0.5, 0.9])
    np.testing.assert_allclose(model.remaining_levels(np.array([0.5, 0.9]), 2), [0.5, 0.9])
    np.testing.assert_allclose(model.remaining_levels(np.array([0.5, 0.9]), 7), [0.25, 0.81])
    d = draw(2000, 2 * M, seed=0)
    cdf = model.count_cdf(np.zeros(4, dtype=np.float32), "m")
    tables = model.latency("m", "d")
    out = model.compose(cdf, tables, d, (0.25, 0.81), steps_done=5)
    raw = model.compose(cdf, tables, d, (0.0625, 0.6561), steps_done=5)
    np.testing.assert_allclose(out["remaining_s"]["quantiles"], raw["remaining_raw_s"])
    assert out["remaining_s"]["mean"] < out["remaining_raw_s"][1]
