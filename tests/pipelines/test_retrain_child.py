"""Drift-triggered retraining in a child process: the caller never loads the training stack.

``tailcast serve`` passes no store to :func:`pipelines.drift_trigger.drift_trigger`, so
each job runs in a spawned child that opens the store itself. These tests drive that
path for real: a fresh interpreter that triggers a real retraining and checks its own
modules afterwards, and a PostgreSQL store whose retrain lock this process holds while
the child tries to take it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core import Settings
from feature_store import PostgresStore
from pipelines.drift_trigger import drift_trigger
from pipelines.retrain import RetrainLockedError, RetrainOutcome

ROOT = Path(__file__).resolve().parents[2]
CALLS = ROOT.parent / "shared" / "data" / "agentic" / "minisweagent_calls.csv.gz"

# Runs in a fresh interpreter: ingest the agentic calls, close the store, trigger one
# drift retraining with no store (the child opens the file), report what came back
# and which heavy modules this (the caller's) process holds afterwards.
SCRIPT = """
import json, sys, threading
from pathlib import Path
from core import Settings
from feature_store import DuckDBStore
from feature_store.importers import get_importer
from pipelines.drift_trigger import drift_trigger
from pipelines.retrain import STATIC_FEATURES, RetrainConfig

settings = Settings(home=sys.argv[1])
with DuckDBStore(settings.resolved_store_path) as store:
    store.ingest_batches(get_importer("minisweagent").read(Path(sys.argv[2])))
fast = RetrainConfig(
    trials=1, text_kinds=("none",), numeric=STATIC_FEATURES, timeout_s=60, cross_fit=0
)
done, out = threading.Event(), []
def on_done(model, result):
    out.append(result)
    done.set()
drift_trigger(settings, config=fast, on_done=on_done)("deepseek-chat")
assert done.wait(600), "no outcome within 600 s"
result = out[0]
print(json.dumps({
    "outcome": type(result).__name__,
    "version": getattr(result, "version", None),
    "detail": str(result)[:300],
    "loaded": sorted(m for m in ("torch", "lightning", "optuna") if m in sys.modules),
}))
"""


def _clean_env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAILCAST_", "MLFLOW_"))}
    env["HF_HUB_OFFLINE"] = "1"
    return env


@pytest.mark.slow
@pytest.mark.shared_data
def test_a_drift_retraining_runs_in_a_child_and_the_caller_never_loads_torch(
    tmp_path: Path,
) -> None:
    assert CALLS.exists(), f"shared data missing: {CALLS}"
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(CALLS)],
        capture_output=True,
        text=True,
        timeout=900,
        env=_clean_env(),
        cwd=ROOT,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["outcome"] == RetrainOutcome.__name__, report["detail"]
    assert report["version"] == 1  # trained, registered and (first champion) promoted
    assert report["loaded"] == []  # the child trained; the caller holds no training stack


@pytest.mark.postgres
def test_a_child_job_reports_the_lock_another_process_holds(pg_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, store_url=pg_url)
    done: list[RetrainOutcome | BaseException] = []
    finished = threading.Event()

    def on_done(served_model: str, result: RetrainOutcome | BaseException) -> None:
        done.append(result)
        finished.set()

    with PostgresStore(pg_url) as store:
        held = store.try_lock("retrain:chat")
        assert held is not None
        with held:
            drift_trigger(settings, on_done=on_done)("chat", None)
            assert finished.wait(120)
    (result,) = done
    assert isinstance(result, RetrainLockedError)  # pickled back whole from the child
    assert result.served_model == "chat"
