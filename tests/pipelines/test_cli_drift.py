"""`tailcast drift replay` end to end on a slice of the real agentic calls.

The slice: calls of 60 SWE-bench tasks from the runs before 2026-04-11 06:00 UTC (no
real slow-down in them). An injected slow-down (latency x 1.6 from the middle of the
slice on) must alarm and retrain; replaying held-out tasks of the same period must not.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from core import RECORD_FIELDS
from feature_store import DuckDBStore

if TYPE_CHECKING:  # mypy maps tests/pipelines/*.py to top-level modules (no __init__.py)
    from _cli import tailcast
else:
    from tests.pipelines._cli import tailcast

ROOT = Path(__file__).resolve().parents[2]
CALLS = ROOT.parent / "shared" / "data" / "agentic" / "minisweagent_calls.csv.gz"
SHIFT = datetime(2026, 4, 11, 6, tzinfo=UTC)
#: Keep the test fast: one trial, no text features.
TEXT_KINDS = '["none"]'


def replay_json(*args: str, home: Path) -> dict[str, Any]:
    """``tailcast *args --json`` with a user configuration the replay must not touch."""
    user = home / "user-home"
    out = tailcast(
        *args,
        "--json",
        home=user,
        timeout=900.0,
        TAILCAST_STORE_PATH=str(user / "store.duckdb"),
        TAILCAST_MLFLOW_TRACKING_URI=f"sqlite:///{user / 'mlflow.db'}",
        TAILCAST_RETRAIN_TEXT_KINDS=TEXT_KINDS,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.fixture(scope="module")
def early(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    """Record fields of the deepseek-chat calls of 60 tasks before the real slow-down."""
    from feature_store.importers import get_importer

    assert CALLS.exists(), f"shared data missing: {CALLS}"
    with DuckDBStore(":memory:") as store:
        store.ingest_batches(get_importer("minisweagent").read(CALLS))
        frame = store.training_frame("deepseek-chat", end=SHIFT, columns=RECORD_FIELDS)
    tasks = pc.list_element(pc.split_pattern(frame.column("workflow_id"), "/"), 1)
    chosen = sorted(set(tasks.to_pylist()))[:60]
    return frame.filter(pc.is_in(tasks, pa.array(chosen)))


def _write(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path)
    return path


@pytest.mark.slow
@pytest.mark.shared_data
def test_injected_slowdown_alarms_and_retrains(early: pa.Table, tmp_path: Path) -> None:
    times = early.column("submitted_at")
    middle = sorted(times.to_pylist())[early.num_rows // 2]
    slow = pc.greater_equal(times, pa.scalar(middle, times.type))
    latency = pc.if_else(
        slow, pc.multiply(early.column("latency_s"), 1.6), early.column("latency_s")
    )
    data = early.set_column(early.column_names.index("latency_s"), "latency_s", latency)
    path = _write(data, tmp_path / "slowed.parquet")
    result = replay_json(
        "drift", "replay", "--served-model", "deepseek-chat", "--data", str(path),
        "--train-before", middle.isoformat(), "--features", "static", "--retrain",
        "--trials", "1", "--plot", str(tmp_path / "coverage.png"), "--no-adaptive-calibration",
        home=tmp_path,
    )  # fmt: skip
    assert result["adaptive_calibration"] is False  # served forecasts are the model's
    assert result["coverage_all"] == result["coverage_model_all"]
    assert (tmp_path / "coverage.png").stat().st_size > 10_000
    for key in (
        "first_alarm_after", "alarms", "groups", "coverage_before", "coverage_after",
        "retrains", "replayed",
    ):  # fmt: skip
        assert key in result, key
    assert result["replayed"] > 1000
    first = result["first_alarm_after"]
    assert first is not None
    assert first <= 500
    alarm = result["alarms"][0]
    assert alarm["group"]["served_model"] == "deepseek-chat"
    assert alarm["after"] == first
    assert result["groups"][alarm["group_key"]]["ood"] >= 1
    # Before the alarm the champion's median is well below the slowed calls.
    assert result["coverage_before"]["0.5"] < 0.4
    assert result["coverage_before_n"] == first
    retrained = result["retrains"][0]
    assert retrained["alarm_after"] == first
    assert retrained["after"] == max(first, 500)  # the job waits for 500 recent completions
    assert retrained["version"] == 2
    if retrained["promoted"]:
        assert result["coverage_after"]["0.9"] > result["coverage_before"]["0.9"]
    # The user's home was not touched: the replay used its own store and registry.
    assert not (tmp_path / "user-home").exists()


@pytest.mark.slow
@pytest.mark.shared_data
def test_same_period_held_out_tasks_raise_no_alarm(early: pa.Table, tmp_path: Path) -> None:
    tasks = pc.list_element(pc.split_pattern(early.column("workflow_id"), "/"), 1)
    held = sorted(set(tasks.to_pylist()))[::3]  # every third task
    is_held = pc.is_in(tasks, pa.array(held))
    train = _write(early.filter(pc.invert(is_held)), tmp_path / "train.parquet")
    replayed = _write(early.filter(is_held), tmp_path / "held.parquet")
    result = replay_json(
        "drift", "replay", "--served-model", "deepseek-chat", "--data", str(replayed),
        "--train-data", str(train), "--features", "static", "--trials", "1", home=tmp_path,
    )  # fmt: skip
    assert result["replayed"] > 500
    assert result["first_alarm_after"] is None
    assert result["alarms"] == []
    assert result["coverage_before"] is None
    assert result["coverage_after"] is None
    assert 0.8 < result["coverage_all"]["0.9"] < 0.97
    assert result["adaptive_calibration"] is True  # the default
    assert 0.8 < result["coverage_model_all"]["0.9"] < 0.97
