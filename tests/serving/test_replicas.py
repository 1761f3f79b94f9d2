"""Two replicas of the service on one PostgreSQL store: one judge, one alert, failover.

Two real ``tailcast serve`` subprocesses (ports from the OS, clean environments) share
a fresh PostgreSQL database on 127.0.0.1:5432 and an MLflow registry on one SQLite
file; a real HTTP receiver on loopback gets the alerts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from drift import SIGNATURE_HEADER, verify

if TYPE_CHECKING:  # mypy maps tests/<pkg>/*.py to top-level modules (no __init__.py)
    from _fixtures import SERVED, completion, new_registry, register
    from _receiver import Receiver
    from _replicas import Replica, clean_env, replicas, wait_for
else:
    from tests.drift._receiver import Receiver
    from tests.serving._fixtures import SERVED, completion, new_registry, register
    from tests.serving._replicas import Replica, clean_env, replicas, wait_for

TOKEN = "replica-token"
SECRET = "replica-hook-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FLAGS = ("--no-llmd-retrain", "--no-drift-retrain", "--poll-interval", "1")

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _env(store_url: str, tracking_uri: str, hook: str) -> dict[str, str]:
    return clean_env(
        TAILCAST_STORE_URL=store_url,
        TAILCAST_MLFLOW_TRACKING_URI=tracking_uri,
        TAILCAST_API_TOKEN=TOKEN,
        TAILCAST_DRIFT_WEBHOOK_URLS=f'["{hook}"]',
        TAILCAST_DRIFT_WEBHOOK_SECRET=SECRET,
    )


def _post(url: str, items: list[dict[str, Any]]) -> None:
    r = httpx.post(f"{url}/v1/completions", json={"completions": items}, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == len(items)


def test_two_replicas_judge_once_alert_once_and_fail_over(
    tmp_path: Path, postgres_database: Callable[[], contextlib.AbstractContextManager[str]]
) -> None:
    registry = new_registry(tmp_path)
    register(registry, SERVED)
    with postgres_database() as name, Receiver() as rx:
        store_url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        env = _env(store_url, registry.tracking_uri, rx.url)
        members = tuple(Replica(tmp_path / h, env, FLAGS) for h in "ab")
        with replicas(*members) as (a, b):
            judge = wait_for(lambda: [r for r in (a, b) if r.drift()["judge"]])
            assert len(judge) == 1  # exactly one replica holds drift-judge
            # 100 completions far slower than any forecast, half to each replica.
            slow = [completion(f"s{i}", latency_s=5000.0) for i in range(100)]
            _post(a.url, slow[:50])
            _post(b.url, slow[50:])
            view = wait_for(
                lambda: (v := judge[0].drift())["observed"] == 100 and not v["inbox"] and v
            )
            ((group,),) = [view["groups"]]
            assert (group["state"], group["n"]) == ("ood", 100)
            other = b if judge[0] is a else a
            idle = other.drift()
            assert (idle["judge"], idle["observed"], idle["groups"]) == (False, 0, [])
            (event,) = idle["events"]  # the store's events, seen by every replica
            # Both replicas deliver; the alert goes out once.
            wait_for(lambda: rx.requests)
            time.sleep(3.0)  # several delivery passes of both replicas
            assert [r.status for r in rx.requests] == [200]
            sent = rx.requests[0]
            assert sent.headers["X-Tailcast-Event"] == event["event_id"]
            assert verify(sent.body, SECRET, sent.headers[SIGNATURE_HEADER])
            # The judge dies without a goodbye: PostgreSQL frees its lock, the other
            # replica becomes the judge and continues the stored groups with what comes next.
            judge[0].kill()
            wait_for(lambda: other.drift()["judge"], 30.0)
            _post(other.url, [completion(f"n{i}") for i in range(5)])
            after = wait_for(lambda: (v := other.drift())["observed"] == 5 and not v["inbox"] and v)
            assert [(g["state"], g["n"]) for g in after["groups"]] == [("ood", 105)]
