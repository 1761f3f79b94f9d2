"""Two replicas on one PostgreSQL store under a stream: SIGKILL, drift, retraining, promotion.

The cluster set-up of docs/deploy.md on one machine: two real ``tailcast serve``
processes share a fresh PostgreSQL store and a real ``mlflow server`` on PostgreSQL;
two real webhook receivers get the alerts. The champion is trained on the agentic calls
before the 2026-04-11 shift (real data). Then 20,000 completions are posted in batches
to both replicas by two client threads: first the pre-shift calls sent again under new
ids (in distribution), then the first hour of calls after the slow-down (the drift
episode). Mid-stream
the replica that judges drift is SIGKILLed and restarted; a batch that fails is sent to
the other replica (as a load balancer retries). Afterwards:

* the store holds every acknowledged completion exactly once;
* every drift event reached each receiver exactly once;
* the episode started exactly one retraining, whose promotion both replicas serve.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from core import CompletionRecord, Settings
from feature_store import PostgresStore
from pipelines.retrain import STATIC_FEATURES, retrain
from registry import MLflowRegistry

if TYPE_CHECKING:  # mypy maps tests/<pkg>/*.py to top-level modules (no __init__.py)
    from _fixtures import QUICK_RETRAIN, agentic_records
    from _receiver import Receiver
    from _replicas import Replica, clean_env, replicas, wait_for
    from _server import mlflow_server
else:
    from tests.drift._receiver import Receiver
    from tests.registry._server import mlflow_server
    from tests.serving._fixtures import QUICK_RETRAIN, agentic_records
    from tests.serving._replicas import Replica, clean_env, replicas, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.shared_data]

ROOT = Path(__file__).resolve().parents[2]
CALLS = ROOT.parent / "shared" / "data" / "agentic" / "minisweagent_calls.csv.gz"
SERVED = "deepseek-chat"
SHIFT = datetime(2026, 4, 11, 6, tzinfo=UTC)
SLOW = datetime(2026, 4, 11, 7, tzinfo=UTC)
TOTAL = 20_000
BATCH = 250
KILL_AT = 0.3  # share of the calm batches sent before the judge is killed
TOKEN = "stream-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _calls(tmp: Path) -> list[dict[str, Any]]:
    """Every completed call of the served model in the agentic file, as JSON rows."""
    return [r.model_dump(mode="json") for r in agentic_records(CALLS, SERVED, tmp)]


def _stream(calls: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Batches: pre-shift calls again under new ids, then the slow-down's first hour."""
    early = [c for c in calls if c["submitted_at"] < SHIFT.isoformat()]
    # One episode: the first hour of the slow-down. The retraining debouncer spaces requests
    # by an hour of event time, so calls hours later would be a second episode if the
    # retrained champion (which may judge part of the stream on a loaded machine) still
    # missed them.
    end = (SLOW + timedelta(hours=1)).isoformat()
    late = [c for c in calls if SLOW.isoformat() <= c["submitted_at"] < end]
    calm = [
        {**early[i % len(early)], "request_id": f"again-{i}-{early[i % len(early)]['request_id']}"}
        for i in range(TOTAL - len(late))
    ]
    rows = calm + late
    return [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]


def _champion(settings: Settings, store_url: str, calls: list[dict[str, Any]]) -> None:
    """Train and promote version 1 on the pre-shift calls; nothing left to judge."""
    early = [CompletionRecord.model_validate(c) for c in calls]
    early = [r for r in early if r.submitted_at < SHIFT]
    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    with PostgresStore(store_url) as store:
        store.ingest(early)
        first = retrain(
            SERVED, settings, store, registry, config=QUICK_RETRAIN, as_of=SHIFT,
            recent_start=datetime(2026, 1, 1, tzinfo=UTC),
        )  # fmt: skip
        assert (first.version, first.promoted) == (1, True)
        while (taken := store.drift_inbox_take(10_000)).num_rows:
            store.drift_inbox_ack(taken.column("request_id").to_pylist())


class Poster:
    """Posts batches to the replicas round robin; a failed batch goes to the other one."""

    def __init__(self, members: tuple[Replica, ...]) -> None:
        self.members = members
        self.acked: list[str] = []
        self.retried = 0

    def post(self, index: int, batch: list[dict[str, Any]]) -> None:
        for attempt in range(40):
            replica = self.members[(index + attempt) % len(self.members)]
            try:
                r = httpx.post(
                    f"{replica.url}/v1/completions",
                    json={"completions": batch},
                    headers=AUTH,
                    timeout=30,
                )
            except httpx.HTTPError:
                self.retried += 1
                time.sleep(0.25)
                continue
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["accepted"] + body["duplicates"] == len(batch), body
            self.acked += [c["request_id"] for c in batch]
            return
        raise AssertionError(f"batch {index} was never acknowledged")


def _judge(members: tuple[Replica, ...]) -> Replica:
    def one() -> list[Replica]:
        found = []
        for r in members:
            with contextlib.suppress(httpx.HTTPError):
                if r.drift()["judge"]:
                    found.append(r)
        return found if len(found) == 1 else []

    judges: list[Replica] = wait_for(one, 30.0, "for exactly one judge")
    return judges[0]


def _send(poster: Poster, batches: list[list[dict[str, Any]]], kill: Callable[[], None]) -> None:
    """Two client threads post every batch; ``kill`` runs while batches are in flight."""
    calm = sum(1 for b in batches if b[0]["request_id"].startswith("again-"))
    with ThreadPoolExecutor(2) as pool:
        futures = []
        for i, batch in enumerate(batches):
            futures.append(pool.submit(poster.post, i, batch))
            if i == int(calm * KILL_AT):
                kill()
        for f in futures:
            f.result()


def _stored_once(store_url: str, ids: list[str]) -> tuple[int, int]:
    with psycopg.connect(store_url) as con:
        row = con.execute(
            "SELECT count(*), count(DISTINCT request_id) FROM records WHERE request_id = ANY(%s)",
            [ids],
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _event_ids(receiver: Receiver) -> Counter[str]:
    return Counter(r.headers["X-Tailcast-Event"] for r in receiver.requests if r.status == 200)


@contextlib.contextmanager
def _cluster(tmp: Path, pg: Callable[[], Any]) -> Iterator[tuple[str, str, Receiver, Receiver]]:
    with (
        pg() as store_db,
        pg() as mlflow_db,
        mlflow_server(mlflow_db, tmp / "mlflow") as tracking,
        Receiver() as first,
        Receiver() as second,
    ):
        yield f"postgresql://postgres@127.0.0.1:5432/{store_db}", tracking, first, second


def test_two_replicas_keep_every_completion_alert_once_and_retrain_once(
    tmp_path: Path,
    postgres_database: Callable[[], contextlib.AbstractContextManager[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert CALLS.exists(), f"shared data missing: {CALLS}"
    for key in [k for k in __import__("os").environ if k.startswith(("TAILCAST_", "MLFLOW_"))]:
        monkeypatch.delenv(key)
    (tmp_path / "mlflow").mkdir()
    monkeypatch.chdir(tmp_path)
    calls = _calls(tmp_path)
    batches = _stream(calls)
    assert sum(len(b) for b in batches) == TOTAL
    with _cluster(tmp_path, postgres_database) as (store_url, tracking, rx1, rx2):
        _champion(Settings(home=tmp_path / "setup", mlflow_tracking_uri=tracking), store_url, calls)
        env = clean_env(
            TAILCAST_STORE_URL=store_url,
            TAILCAST_MLFLOW_TRACKING_URI=tracking,
            TAILCAST_API_TOKEN=TOKEN,
            TAILCAST_DRIFT_WEBHOOK_URLS=json.dumps([rx1.url, rx2.url]),
            TAILCAST_RETRAIN_TRIALS="1",
            TAILCAST_RETRAIN_TEXT_KINDS='["none"]',
            TAILCAST_RETRAIN_NUMERIC=json.dumps(list(STATIC_FEATURES)),
            TAILCAST_RETRAIN_POLICY="always",
            TAILCAST_RETRAIN_CROSS_FIT="0",
        )
        flags = ("--no-llmd-retrain", "--poll-interval", "2")
        members = tuple(Replica(tmp_path / h, env, flags) for h in ("a", "b"))
        with replicas(*members):
            poster = Poster(members)
            restarts: list[threading.Thread] = []

            def kill_the_judge() -> None:
                judge = _judge(members)
                judge.kill()  # batches in flight to it fail and go to the other replica
                restarts.append(threading.Thread(target=judge.start))  # it rejoins mid-stream
                restarts[0].start()

            _send(poster, batches, kill_the_judge)
            restarts[0].join(timeout=180)
            assert all(r.proc is not None and r.proc.poll() is None for r in members)
            assert poster.retried > 0  # the kill hit batches in flight (sent again elsewhere)
            judge = _judge(members)
            wait_for(lambda: (v := judge.drift())["inbox"] == 0 and v, 180.0, "for the judge")
            # Every acknowledged completion is stored, once.
            assert len(set(poster.acked)) == TOTAL
            assert _stored_once(store_url, poster.acked) == (TOTAL, TOTAL)
            # One retraining: version 2, promoted (policy always), served by both.
            wait_for(lambda: all(r.loaded_version(SERVED) == 2 for r in members), 300.0)
            time.sleep(5.0)  # further alarms would have asked for more retraining by now
            versions = MLflowRegistry(tracking).list_versions(SERVED)
            assert sorted(v.version for v in versions) == [1, 2]
            # Each drift event reached each receiver exactly once.
            events = {e["event_id"] for e in judge.drift()["events"]}
            assert any(e["kind"] == "ood" for e in judge.drift()["events"])
            wait_for(lambda: all(set(_event_ids(rx)) == events for rx in (rx1, rx2)), 60.0)
            time.sleep(3.0)  # several more delivery passes of both replicas
            for rx in (rx1, rx2):
                assert _event_ids(rx) == Counter(dict.fromkeys(events, 1))
            print(f"retried {poster.retried} batches; {len(events)} drift events")
