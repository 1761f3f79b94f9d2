"""Fitting and scoring workflow models (training side), on tiny tables and real task runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from core.workflow import draw
from training.workflow import (
    CALLS_FILE,
    REMAINING_BUCKETS,
    TASKS_FILE,
    WorkflowData,
    bonferroni,
    cohort_curves,
    count_kernels,
    coverage_pvalue,
    evaluate_workflows,
    fit_workflow_model,
    intraclass_correlation,
    load_workflow_data,
    max_calls_for,
    remaining_calibration,
    remaining_knots,
    remaining_truth,
    split_by_instance,
    step_profile,
    task_calls,
    tool_tables,
    wrapup_pmf,
    write_subset,
)

if TYPE_CHECKING:  # mypy maps test directories to top-level modules (no __init__.py)
    from _workflow_fixtures import tiny_predictor
else:
    from tests.core.workflow._workflow_fixtures import tiny_predictor

AGENTIC = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "agentic"


def test_count_kernels_exact() -> None:
    k = count_kernels([10, 40], 0.1, max_calls_for([10, 40], 0.1))
    assert k.shape == (2, 61)
    np.testing.assert_allclose(k.sum(axis=1), 1.0)
    assert k.argmax(axis=1).tolist() == [9, 39]
    assert round(float(k[0, 9]), 4) == 0.3832
    assert count_kernels([3], 0.0, 4).tolist() == [[0.0, 0.0, 1.0, 0.0]]


def test_tool_tables_by_kind() -> None:
    calls = pd.DataFrame(
        {
            "tool_s": [0.1] * 40 + [5.0] * 40 + [1.0] * 3 + [np.nan],
            "command": ["cat a"] * 40
            + ["cd /t && python -m pytest"] * 40
            + ["git diff"] * 3
            + [None],
        }
    )
    pooled, by_kind = tool_tables(calls, min_kind=30)
    assert sorted(by_kind) == ["cat", "python"]
    assert np.all(by_kind["python"] == 5.0)
    assert pooled.shape == (200,)
    assert round(float(pooled.mean()), 4) == 2.4927  # quantile grid, not the sample mean 2.494


def test_step_profile_carries_forward() -> None:
    calls = pd.DataFrame(
        {"step": [1] * 5 + [2] * 2, "prompt_tokens": [100.0] * 5 + [9.0] * 2, "cached_tokens": 0.0}
    )
    p = step_profile(calls, 4, min_calls=5)
    assert p[:, 0].tolist() == [100.0, 100.0, 100.0, 100.0]  # step 0 from the overall median


def test_intraclass_correlation_exact() -> None:
    z = np.array([1.0, 2.0, 3.0, 2.0, 3.0, 4.0])
    g = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    # MSB = 3 * 2 * 0.25 = 1.5, MSW = 1; ICC = (1.5 - 1) / (1.5 + 2 * 1)
    assert intraclass_correlation(z, g) == pytest.approx(0.5 / 3.5)
    assert intraclass_correlation(np.zeros(3), np.zeros(3)) == 0.0


def test_remaining_calibration_relative_to_the_first_bucket() -> None:
    from scipy.special import ndtr  # type: ignore[import-untyped]

    z = np.linspace(-1.0, 1.0, 41)
    # bucket 0 (reference): scores 3x too wide and off-centre; bucket 10: same spread,
    # bucket 20: twice that spread, 0.6 higher; bucket 40: too few values (reuses 20's)
    u = ndtr(np.concatenate([0.4 + 3 * z, 0.4 + 3 * z, 1.0 + 6 * z, [0.0] * 5]))
    steps = np.repeat([0, 10, 20, 40], [41, 41, 41, 5])
    rows = remaining_calibration(u, steps, (0, 10, 20, 40))
    assert rows.shape == (4, 101)
    np.testing.assert_allclose(rows[0], np.linspace(0.0, 1.0, 101), atol=1e-12)
    np.testing.assert_allclose(rows[1], rows[0], atol=1e-12)
    assert rows[2, [10, 50, 90]].round(4).tolist() == [0.0248, 0.7257, 0.9992]
    np.testing.assert_array_equal(rows[3], rows[2])
    assert REMAINING_BUCKETS[0] == 0


def test_remaining_knots_are_mean_log_calls_done_per_bucket() -> None:
    steps = np.array([0, 3, 6, 9, 12, 15, 21, 60, 75], dtype=np.int64)
    knots = remaining_knots(steps, (0, 10, 20, 40, 60))
    # bucket 40 has no runs: log1p(40); the others average log1p over their runs
    assert knots.round(4).tolist() == [1.4087, 2.6688, 3.091, 3.7136, 4.2208]
    assert np.all(np.diff(knots) > 0)
    assert knots[0] == pytest.approx(np.mean(np.log1p([0, 3, 6, 9])))


def test_task_calls_and_remaining_truth() -> None:
    calls = pd.DataFrame(
        {
            "task": ["t"] * 3 + ["u"],
            "step": [0, 1, 3, 0],
            "call_end_ts": [10.0, 15.0, 40.0, 0.0],
            "latency_s": [np.nan, 4.0, 9.0, 1.0],
            "command": ["ls", None, "git diff", "x"],
        }
    )
    data = WorkflowData(calls, pd.DataFrame({"task": ["t", "u"], "n_llm_calls": [4, 1]}))
    ends, latencies, commands = task_calls(data, "t", 4)
    assert commands == ["ls", None, None, "git diff"]
    assert np.isnan(latencies[[0, 2]]).all()
    assert remaining_truth(ends, 30.0, 4, 0) == 30.0  # not started: the wall time
    assert remaining_truth(ends, 30.0, 4, 2) == 25.0  # end of call 3 - end of call 1
    assert np.isnan(remaining_truth(ends, 30.0, 4, 3))  # end of call 2 not recorded
    # git diff at call 3 of 4: no call after it (D = 0)
    after = wrapup_pmf(data, ("git diff",), 0.0, 3)
    assert after is not None
    assert after.tolist() == [1.0, 0.0, 0.0]
    assert wrapup_pmf(data, (), 0.0, 3) is None


def test_cohort_curves_score_the_same_runs_at_every_depth() -> None:
    rng = np.random.default_rng(7)
    by_k = []
    for n in (8, 15, 25, 30, 45, 50):
        rows: dict[int, tuple[float, list[float]]] = {}
        for k in (0, 10, 20, 40):
            if k < n:
                m = 10.0 * (n - k)
                rows[k] = (m * float(rng.lognormal(0, 0.4)), [0.6 * m, m, 1.5 * m])
        by_k.append(rows)
    out = cohort_curves(by_k, (10, 20, 30, 40), (0, 10, 20, 40), np.array([0.1, 0.5, 0.9]))
    # cohort 40 has 2 runs (< 3) and 30 is not a scored depth: both left out; the
    # 8-call run is in no cohort
    assert out == {
        "10": {
            "steps_done": [0.0, 10.0],
            "tasks": [5.0, 5.0],
            "width_10_90_s": [297.0, 207.0],
            "inside_10_90": [5.0, 4.0],
            "below_q90": [5.0, 4.0],
        },
        "20": {
            "steps_done": [0.0, 10.0, 20.0],
            "tasks": [4.0, 4.0, 4.0],
            "width_10_90_s": [337.5, 247.5, 157.5],
            "inside_10_90": [4.0, 3.0, 4.0],
            "below_q90": [4.0, 3.0, 4.0],
        },
    }


def test_coverage_pvalue_and_bonferroni() -> None:
    # 54 of 64 runs below q0.9 (0.844) is well within chance of a nominal 0.9
    assert round(coverage_pvalue(54, 64, 0.9), 4) == 0.1417
    assert coverage_pvalue(8, 10, 0.8) == pytest.approx(1.0)
    assert coverage_pvalue(40, 64, 0.9) < 1e-6
    assert bonferroni([0.01, 0.2, 0.5]) == pytest.approx([0.03, 0.6, 1.0])


def test_load_names_file_line_and_field(tmp_path: Path) -> None:
    pd.DataFrame({"run": ["r"], "instance_id": ["i"]}).to_csv(tmp_path / CALLS_FILE, index=False)
    pd.DataFrame({"run": ["r"]}).to_csv(tmp_path / TASKS_FILE, index=False)
    with pytest.raises(ValueError, match=rf"{CALLS_FILE}: missing column\(s\) model, step"):
        load_workflow_data(tmp_path)
    calls = {c: ["1"] for c in ("run", "instance_id", "model", "call_end_ts", "latency_s")}
    pd.DataFrame({**calls, "step": ["0"], "tool_end_ts": ["soon"]}).to_csv(
        tmp_path / CALLS_FILE, index=False
    )
    tasks = {c: ["1"] for c in ("run", "instance_id", "model", "n_llm_calls", "wall_s")}
    pd.DataFrame({**tasks, "task_text": ["x"]}).to_csv(tmp_path / TASKS_FILE, index=False)
    with pytest.raises(ValueError, match="line 2: field tool_end_ts is not a number"):
        load_workflow_data(tmp_path)


@pytest.fixture(scope="module")
def agentic() -> WorkflowData:
    assert AGENTIC.is_dir(), f"shared data missing: {AGENTIC}"
    return load_workflow_data(AGENTIC)


@pytest.mark.shared_data
def test_split_keeps_instances_whole(agentic: WorkflowData, tmp_path: Path) -> None:
    train, test = split_by_instance(agentic, 0.3)
    assert not set(train.tasks["instance_id"]) & set(test.tasks["instance_id"])
    assert len(train.tasks) + len(test.tasks) == len(agentic.tasks) == 149
    assert 0.15 < len(test.tasks) / len(agentic.tasks) < 0.45
    out = write_subset(AGENTIC, tmp_path / "test", set(test.tasks["instance_id"]))
    again = load_workflow_data(out)
    assert len(again.tasks) == len(test.tasks)
    assert len(again.calls) == len(test.calls)
    assert again.calls["latency_s"].sum() == pytest.approx(test.calls["latency_s"].sum())


@pytest.mark.shared_data
@pytest.mark.slow
def test_fit_and_score_on_real_task_runs(agentic: WorkflowData) -> None:
    train, test = split_by_instance(agentic, 0.3)
    train.calls["held_out"] = train.calls["step"] % 5 == 0
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(train.tasks), 8))
    model = fit_workflow_model(train, tiny_predictor(), emb, {})
    assert model.spec.served_models == ("deepseek-chat", "deepseek-reasoner")
    assert 0.0 <= model.spec.rho < 0.95
    assert model.max_calls == max_calls_for(train.tasks["n_llm_calls"], 0.1)
    pit = model.arrays["pit_map"]
    assert pit[0] >= 0.0
    assert pit[-1] <= 1.0
    assert np.all(np.diff(pit) >= 0)
    # remaining-time recalibration by calls done; the wrap-up law sums to 1
    assert model.spec.remaining_buckets == REMAINING_BUCKETS
    knots = np.asarray(model.spec.remaining_knots)
    assert knots.shape == (len(REMAINING_BUCKETS),)
    assert np.all(np.diff(knots) > 0)
    assert np.all(knots >= np.log1p(REMAINING_BUCKETS))
    maps = model.arrays["remaining_pit"]
    assert maps.shape == (len(REMAINING_BUCKETS), 101)
    np.testing.assert_allclose(maps[0], np.linspace(0.0, 1.0, 101), atol=1e-12)
    assert np.all(np.diff(maps, axis=1) >= 0)
    assert model.spec.wrapup_markers == ("git diff", "patch.txt")
    assert model.arrays["wrapup_pmf"].sum() == pytest.approx(1.0)
    result = evaluate_workflows(
        model,
        train,
        test,
        rng.normal(size=(len(test.tasks), 8)),
        {},
        draw(500, 2 * model.max_calls, 0),
        steps=(0, 10, 40),
    )
    assert result["tasks"] == len(test.tasks)
    comp = result["composition"]
    assert set(comp) == {"distributional", "sum_of_means", "sum_of_p90"}
    assert 0.0 <= comp["distributional"]["coverage"]["0.9"] <= 1.0
    # a sum of per-call P90s is never below the sum of per-call means
    assert comp["sum_of_p90"]["coverage"]["0.9"] >= comp["sum_of_means"]["coverage"]["0.9"]
    assert set(result["call_count"]) == {"tailcast", "empirical"}
    curve = result["remaining"]
    assert curve["steps_done"] == [0.0, 10.0, 40.0]
    assert curve["tasks"][0] >= curve["tasks"][-1]
    assert curve["width_10_90_s"][0] == pytest.approx(curve["raw_width_10_90_s"][0])
    # cohorts (default 20, 40, 80): only 40 is a scored depth; its runs are the same
    # at 0, 10 and 40 calls done, and are those scored at 40
    cohorts = result["cohorts"]
    assert set(cohorts) == {"40"}
    assert cohorts["40"]["steps_done"] == [0.0, 10.0, 40.0]
    assert cohorts["40"]["tasks"][0] == curve["tasks"][-1]
    for c, cur in cohorts.items():
        assert all(k <= int(c) for k in cur["steps_done"])
        assert len(set(cur["tasks"])) == 1
        assert all(0 <= h <= cur["tasks"][0] for h in cur["inside_10_90"])
