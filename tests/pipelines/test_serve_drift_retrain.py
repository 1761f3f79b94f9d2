"""The closed loop in a running service: drift alarm -> retraining job -> new champion served.

Real uvicorn on loopback, a real DuckDB store, a real MLflow registry (SQLite) and
the real agentic calls: the champion is trained on the calls before the DeepSeek
slow-down (2026-04-11 06:00 UTC); the slower calls after 07:00 are posted to
``/v1/completions`` the way a router would report them. The service's drift monitor
must turn the group out of distribution, ``pipelines.drift_trigger.drift_trigger`` (what
``tailcast serve`` passes as ``on_retrain``) must retrain on the service's own store,
and the poller must swap the promoted challenger in.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from core import Settings
from feature_store import DuckDBStore
from pipelines.drift_trigger import drift_trigger
from pipelines.retrain import RetrainOutcome, retrain
from registry import MLflowRegistry
from serving import create_app

if TYPE_CHECKING:  # mypy maps tests/<pkg>/*.py to top-level modules (no __init__.py)
    from _fixtures import QUICK_RETRAIN, agentic_records, running
else:
    from tests.serving._fixtures import QUICK_RETRAIN, agentic_records, running

ROOT = Path(__file__).resolve().parents[2]
CALLS = ROOT.parent / "shared" / "data" / "agentic" / "minisweagent_calls.csv.gz"
SERVED = "deepseek-chat"
SHIFT = datetime(2026, 4, 11, 6, tzinfo=UTC)
SLOW = datetime(2026, 4, 11, 7, tzinfo=UTC)
TOKEN = "drift-loop-token"


def _served_version(client: httpx.Client) -> int:
    (model,) = client.get("/v1/models").json()["models"]
    assert model["served_model"] == SERVED
    return int(model["loaded_version"])


@pytest.mark.slow
@pytest.mark.shared_data
def test_drift_alarm_retrains_and_the_service_swaps_in_the_new_champion(tmp_path: Path) -> None:
    assert CALLS.exists(), f"shared data missing: {CALLS}"
    records = agentic_records(CALLS, SERVED, tmp_path)
    early = [r for r in records if r.submitted_at < SHIFT]
    late = [r for r in records if r.submitted_at >= SLOW]
    assert len(early) > 7000
    assert len(late) > 1500
    settings = Settings(home=tmp_path / "home", api_token=TOKEN)
    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    store = DuckDBStore(settings.resolved_store_path)
    try:
        store.ingest(early)
        first = retrain(
            SERVED, settings, store, registry, config=QUICK_RETRAIN, as_of=SHIFT,
            recent_start=datetime(2026, 1, 1, tzinfo=UTC),
        )  # fmt: skip
        assert (first.version, first.promoted) == (1, True)
        # The training calls predate the service: judge only what is posted to it.
        while (taken := store.drift_inbox_take(10_000)).num_rows:
            store.drift_inbox_ack(taken.column("request_id").to_pylist())

        done: list[RetrainOutcome | BaseException] = []
        finished = threading.Event()

        def on_done(model: str, result: RetrainOutcome | BaseException) -> None:
            assert model == SERVED
            done.append(result)
            finished.set()

        on_retrain = drift_trigger(
            settings, config=QUICK_RETRAIN, store=lambda: store, on_done=on_done
        )
        app = create_app(
            settings, store=store, registry=registry, poll_interval_s=0.5, on_retrain=on_retrain
        )
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            assert _served_version(client) == 1
            sent = 0
            for start in range(0, len(late), 250):  # a router reporting in batches
                batch: list[dict[str, Any]] = [
                    r.model_dump(mode="json", exclude_none=True) for r in late[start : start + 250]
                ]
                r = client.post("/v1/completions", json={"completions": batch}, headers=auth)
                assert r.status_code == 200, r.text
                sent += len(batch)
                app.state.drift.flush()
                if app.state.drift.retrain_requests:
                    break
            # (The quick one-trial champion here is wide: the alarm takes a few thousand
            # completions; `python -m benchmarks drift` measures detection speed.)
            assert app.state.drift.retrain_requests == {SERVED: 1}, sent
            metrics = client.get("/metrics").text
            assert (
                f'tailcast_drift_retrain_requests_total{{served_model="{SERVED}"}} 1.0' in metrics
            )
            assert "tailcast_drift_group_ood{" in metrics
            assert finished.wait(600), "the drift-triggered retraining did not finish"
            (outcome,) = done
            assert isinstance(outcome, RetrainOutcome), outcome
            assert (outcome.version, outcome.promoted) == (2, True)
            run = registry.client.get_run(outcome.run_id or "")
            assert run.data.tags["trigger"] == "drift"
            deadline = time.monotonic() + 60
            while _served_version(client) != 2:
                assert time.monotonic() < deadline, "the poller did not swap in version 2"
                time.sleep(0.2)
            # The new champion starts a fresh judgement of the next completions.
            nxt = [r.model_dump(mode="json", exclude_none=True) for r in late[sent : sent + 50]]
            r = client.post("/v1/completions", json={"completions": nxt}, headers=auth)
            assert r.status_code == 200, r.text
            app.state.drift.flush()
            groups = client.get("/v1/drift").json()["groups"]
            assert {g["model_version"] for g in groups} == {"2"}
            assert sum(g["n"] for g in groups) == len(nxt)
    finally:
        store.close()
