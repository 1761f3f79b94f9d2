"""The retraining job on the real agentic calls: real DuckDB store, real MLflow (SQLite).

The DeepSeek API was about 25% slower per output token from 2026-04-11 07:00 UTC; the
champion is trained on the calls before 06:00 and retrained on the slow calls.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from core import Settings
from feature_store import DuckDBStore
from pipelines.drift_trigger import drift_trigger
from pipelines.retrain import (
    STATIC_FEATURES,
    RetrainConfig,
    RetrainOutcome,
    job_frames,
    retrain,
)
from registry import MLflowRegistry

ROOT = Path(__file__).resolve().parents[2]
CALLS = ROOT.parent / "shared" / "data" / "agentic" / "minisweagent_calls.csv.gz"
SERVED = "deepseek-chat"
SHIFT = datetime(2026, 4, 11, 6, tzinfo=UTC)
LATER = datetime(2026, 4, 11, 7, 40, tzinfo=UTC)
FAST = RetrainConfig(
    trials=1, text_kinds=("none",), numeric=STATIC_FEATURES, timeout_s=120, cross_fit=0
)


def _frame(minutes: list[int]) -> pa.Table:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return pa.table(
        {
            "request_id": [f"r{i}" for i in range(len(minutes))],
            "submitted_at": pa.array(
                [t0 + timedelta(minutes=m) for m in minutes], pa.timestamp("us", "UTC")
            ),
        }
    )


def test_job_frames_window_holdout_and_reference_sample() -> None:
    frame = _frame(list(range(100)))  # one record a minute, 00:00 to 01:39
    as_of = datetime(2026, 1, 1, 1, 40, tzinfo=UTC)
    config = RetrainConfig(window_h=0.5, min_recent=10, reference_fraction=0.5, min_holdout=3)
    parts = job_frames(frame, config, as_of=as_of, recent_start=None, holdout=True)
    # 30 recent rows (01:10-01:39); the newest 20% (6) held out; 12 of the 70 older sampled.
    assert parts.rows == {"recent": 30, "reference": 12, "train": 36, "holdout": 6, "known": 100}
    assert parts.holdout.column("request_id").to_pylist() == [f"r{i}" for i in range(94, 100)]
    ids = [int(r[1:]) for r in parts.train.column("request_id").to_pylist()]
    assert ids[-24:] == list(range(70, 94))
    assert all(i < 70 for i in ids[:12])
    assert ids[:12] == sorted(ids[:12])
    assert parts.recent_start == datetime(2026, 1, 1, 1, 10, tzinfo=UTC)
    again = job_frames(frame, config, as_of=as_of, recent_start=None, holdout=True)
    assert again.train.equals(parts.train)  # seeded sample

    # A short default window is extended to the newest min_recent rows ...
    small = job_frames(
        frame,
        config.model_copy(update={"window_h": 0.05}),
        as_of=as_of,
        recent_start=None,
        holdout=False,
    )
    assert small.rows["recent"] == 10
    assert small.rows["holdout"] == 0
    # ... an explicit start (since the drifting model took over) is kept as given.
    since = datetime(2026, 1, 1, 1, 35, tzinfo=UTC)
    kept = job_frames(frame, config, as_of=as_of, recent_start=since, holdout=False)
    assert kept.rows["recent"] == 5


def alias(reg: MLflowRegistry, name: str = "champion") -> int:
    """The version an alias of the served model points at."""
    found = reg.alias_version(SERVED, name)
    assert found is not None, name
    return found.version


@dataclass
class Home:
    settings: Settings
    store: DuckDBStore
    registry: MLflowRegistry
    first: RetrainOutcome


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """Store with the agentic calls; a champion trained on the calls before 06:00."""
    from feature_store.importers import get_importer

    assert CALLS.exists(), f"shared data missing: {CALLS}"
    settings = Settings(home=tmp_path_factory.mktemp("retrain"))
    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    with DuckDBStore(settings.resolved_store_path) as store:
        store.ingest_batches(get_importer("minisweagent").read(CALLS))
        first = retrain(
            SERVED,
            settings,
            store,
            registry,
            config=FAST,
            as_of=SHIFT,
            recent_start=datetime(2026, 1, 1, tzinfo=UTC),
        )
        yield Home(settings, store, registry, first)


@pytest.mark.slow
@pytest.mark.shared_data
def test_retrain_registers_challenger_and_honours_each_policy(home: Home) -> None:
    reg = home.registry
    first = home.first
    # No champion: a fresh search, nothing held out, promoted under any policy but manual.
    assert (first.version, first.promoted, first.champion_before) == (1, True, None)
    assert first.warm_start == "off"
    assert first.holdout == {}
    assert first.rows["train"] == first.rows["known"] > 7000
    run = reg.client.get_run(first.run_id or "")
    assert run.data.params["job"] == "retrain"
    assert run.data.tags["promoted"] == "true"

    def job(policy: str) -> RetrainOutcome:
        return retrain(
            SERVED,
            home.settings,
            home.store,
            reg,
            config=FAST.model_copy(update={"policy": policy}),
            as_of=LATER,
            recent_start=SHIFT,
            trigger="test",
        )

    manual = job("manual")
    assert (manual.version, manual.promoted, manual.champion_before) == (2, False, 1)
    assert manual.warm_start == "recalibrate"
    assert alias(reg) == 1
    assert alias(reg, "challenger") == 2
    # Recent window: the slow calls since 06:00 that had completed by 07:40.
    assert 500 < manual.rows["recent"] < 1000
    # A recalibration is compared cross-fitted over the whole window: nothing held back.
    assert manual.rows["holdout"] == 0
    assert manual.rows["train"] == manual.rows["recent"] + manual.rows["reference"]
    run = reg.client.get_run(manual.run_id or "")
    for name in ("challenger", "champion"):
        assert run.data.metrics[f"holdout.{name}.mean_pinball"] == pytest.approx(
            manual.holdout[name]["mean_pinball"]
        )
    assert run.data.params["policy"] == "manual"
    assert run.data.params["trigger"] == "test"
    assert run.data.tags["promoted"] == "false"
    assert run.data.metrics["rows_compared"] == manual.rows["recent"]  # cross-fitted
    lost = reg.version(SERVED, manual.version)  # the verdict is on the version too
    assert (lost.outcome, lost.trigger) == ("not promoted", "test")
    assert lost.mean_pinball == pytest.approx(manual.holdout["challenger"]["mean_pinball"])
    assert f"on {manual.rows['recent']} recent (cross-fitted) rows" in (lost.outcome_detail or "")
    # Warm start: the champion's network, offsets recomputed on the slower recent calls.
    old, _ = reg.load(SERVED, version=1)
    new, _ = reg.load(SERVED, version=2)
    for key in old.arrays:
        if key.endswith(("_W", "_b")):
            assert (old.arrays[key] == new.arrays[key]).all(), key
    p90 = old.spec.levels.index(0.9)
    assert new.arrays["cal_offsets"][0, p90] > old.arrays["cal_offsets"][0, p90]
    assert new.spec.metadata["trigger"] == "test"

    auto = job("auto_if_better")
    better = auto.holdout["challenger"]["mean_pinball"] < auto.holdout["champion"]["mean_pinball"]
    assert auto.promoted == better
    assert (alias(reg) == auto.version) == better

    always = job("always")
    assert always.promoted
    assert alias(reg) == always.version


@pytest.mark.slow
@pytest.mark.shared_data
def test_drift_trigger_runs_in_background_and_reports_failures(home: Home) -> None:
    done: list[tuple[str, RetrainOutcome | BaseException]] = []
    finished = threading.Event()

    def on_done(model: str, result: RetrainOutcome | BaseException) -> None:
        done.append((model, result))
        finished.set()

    trigger = drift_trigger(
        home.settings,
        config=FAST.model_copy(update={"policy": "manual"}),
        store=home.store,
        on_done=on_done,
    )
    trigger("no-such-model")
    assert finished.wait(60)
    model, result = done[0]
    assert model == "no-such-model"
    assert isinstance(result, ValueError)
    assert "no-such-model" in str(result)

    # Two alarms in a row: one job (the second call finds it running).
    finished.clear()
    trigger(SERVED, None)
    trigger(SERVED, None)
    assert finished.wait(300)
    threading.Event().wait(1.0)
    ran = [r for m, r in done if m == SERVED]
    assert len(ran) == 1
    outcome = ran[0]
    assert isinstance(outcome, RetrainOutcome), outcome
    run = home.registry.client.get_run(outcome.run_id or "")
    assert run.data.tags["trigger"] == "drift"
    assert not outcome.promoted


@pytest.mark.slow
@pytest.mark.shared_data
def test_refit_warm_start_is_compared_on_the_newest_held_out_rows(home: Home) -> None:
    config = FAST.model_copy(update={"policy": "manual", "warm_start": "refit"})
    out = retrain(
        SERVED, home.settings, home.store, home.registry, config=config, as_of=LATER,
        recent_start=SHIFT,
    )  # fmt: skip
    assert out.warm_start == "refit"
    assert out.rows["holdout"] == round(0.2 * out.rows["recent"])
    assert out.rows["train"] == out.rows["recent"] - out.rows["holdout"] + out.rows["reference"]
    assert out.rows["reference"] == round(0.5 * (out.rows["recent"] - out.rows["holdout"]))
    run = home.registry.client.get_run(out.run_id or "")
    assert run.data.params["warm_start"] == "refit"
    assert run.data.metrics["rows_holdout"] == out.rows["holdout"]
    assert set(out.holdout) == {"challenger", "champion"}
    # One fit of the champion's architecture and features, not a search.
    old, _ = home.registry.load(SERVED, version=1)
    new, _ = home.registry.load(SERVED, version=out.version)
    assert new.spec.hidden == old.spec.hidden
    assert new.spec.numeric == old.spec.numeric == STATIC_FEATURES
