"""Drift judgement survives restarts: real ``tailcast serve`` processes, stored drift state.

A tiny champion in a real MLflow registry (SQLite); completions far slower than any
forecast turn the group out of distribution. The service is stopped (SIGINT) or killed
(SIGKILL) and started again, on an embedded DuckDB home and on PostgreSQL: ``/v1/drift``
shows the same groups with the same flags and statistics, the ``tailcast_drift_group_ood``
series is back, and the next completions continue the same windows. With two replicas
on PostgreSQL, the judge's successor after a SIGKILL continues the same groups.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from drift import JUDGE_KEY, GroupSnapshot, JudgeSnapshot
from feature_store import RemoteStore
from serving._calibration import CALIBRATION_KEY

if TYPE_CHECKING:  # mypy maps tests/<pkg>/*.py to top-level modules (no __init__.py)
    from _fixtures import SERVED, completion, new_registry, register
    from _replicas import Replica, clean_env, replicas, wait_for
else:
    from tests.serving._fixtures import SERVED, completion, new_registry, register
    from tests.serving._replicas import Replica, clean_env, replicas, wait_for

FLAGS = ("--no-llmd-retrain", "--no-drift-retrain", "--poll-interval", "1")
Databases = Callable[[], contextlib.AbstractContextManager[str]]

pytestmark = pytest.mark.slow


def _post(url: str, items: list[dict[str, Any]]) -> None:
    r = httpx.post(f"{url}/v1/completions", json={"completions": items}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == len(items)


def _judged(replica: Replica, observed: int) -> dict[str, Any]:
    """``/v1/drift`` once ``replica`` judges and has judged ``observed`` completions."""

    def done() -> dict[str, Any] | None:
        view = replica.drift()
        ok = view["judge"] and view["observed"] == observed and not view["inbox"]
        return view if ok else None

    result: dict[str, Any] = wait_for(done, 60.0, f"for {observed} judged completions")
    return result


def _ood_series(replica: Replica) -> dict[tuple[str, str, str], float]:
    """The ``tailcast_drift_group_ood`` samples of ``/metrics``, by (model, class, device)."""
    text = httpx.get(f"{replica.url}/metrics", timeout=10).text
    out: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "tailcast_drift_group_ood":
            continue
        for s in family.samples:
            key = (s.labels["served_model"], s.labels["prompt_class"], s.labels["device"])
            out[key] = s.value
    return out


def _slow_group(replica: Replica) -> tuple[list[dict[str, Any]], dict[tuple[str, str, str], float]]:
    """Drive one group OOD through ``replica``; its groups and its OOD series."""
    _post(replica.url, [completion(f"s{i}", latency_s=5000.0) for i in range(100)])
    groups = _judged(replica, 100)["groups"]
    assert [(g["state"], g["n"], g["model_version"]) for g in groups] == [("ood", 100, "1")]
    series = _ood_series(replica)
    assert list(series.values()) == [1.0]
    return groups, series


def _env(tmp_path: Path, tracking_uri: str, store_url: str | None) -> dict[str, str]:
    extra = {"TAILCAST_STORE_URL": store_url} if store_url else {}
    return clean_env(
        TAILCAST_HOME=str(tmp_path / "home"), TAILCAST_MLFLOW_TRACKING_URI=tracking_uri, **extra
    )


@pytest.mark.parametrize(
    "backend", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_restarted_service_shows_and_continues_the_same_judgement(
    backend: str, tmp_path: Path, postgres_database: Databases
) -> None:
    registry = new_registry(tmp_path)
    register(registry, SERVED)
    with contextlib.ExitStack() as stack:
        store_url = None
        if backend == "postgres":
            name = stack.enter_context(postgres_database())
            store_url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        service = Replica(tmp_path / "run", _env(tmp_path, registry.tracking_uri, store_url), FLAGS)
        with replicas(service):
            groups, series = _slow_group(service)
            for restart in (service.stop, service.kill):  # a clean stop, then SIGKILL
                restart()
                service.start()
                view = _judged(service, 0)
                assert view["groups"] == groups  # state, n, since, version, statistics
                assert _ood_series(service) == series
            # The next completions continue the same windows: n goes on from 100.
            _post(service.url, [completion(f"n{i}") for i in range(5)])
            after = _judged(service, 5)["groups"]
            assert [(g["state"], g["n"], g["since"]) for g in after] == [
                ("ood", 105, groups[0]["since"])
            ]
            g = after[0]["group"]
            key = f"{g['served_model']}|{g['prompt_class']}|{g['device']}"
            _check_stored_state(RemoteStore(service.url), key)


def _check_stored_state(remote: RemoteStore, key: str) -> None:
    """The state as the service's store keeps it, read and written through its broker API."""
    stored = remote.load_drift_state()
    assert sorted(stored) == sorted([key, JUDGE_KEY, CALIBRATION_KEY])
    snap = GroupSnapshot.model_validate_json(stored[key])
    assert (snap.state, snap.n, snap.model_version) == ("ood", 105, "1")
    assert JudgeSnapshot.model_validate_json(stored[JUDGE_KEY]).versions == {SERVED: "1"}
    remote.save_drift_state({"other|default|gpu": "{}"}, drop=[JUDGE_KEY])
    assert sorted(remote.load_drift_state()) == sorted([key, CALIBRATION_KEY, "other|default|gpu"])
    remote.save_drift_state({}, drop=["other|default|gpu"])
    assert sorted(remote.load_drift_state()) == sorted([key, CALIBRATION_KEY])


@pytest.mark.postgres
def test_the_successor_of_a_killed_judge_continues_its_groups(
    tmp_path: Path, postgres_database: Databases
) -> None:
    registry = new_registry(tmp_path)
    register(registry, SERVED)
    with postgres_database() as name:
        env = _env(tmp_path, registry.tracking_uri, f"postgresql://postgres@127.0.0.1:5432/{name}")
        members = tuple(Replica(tmp_path / h, env, FLAGS) for h in "ab")
        with replicas(*members) as (a, b):
            (judge,) = wait_for(lambda: [r for r in (a, b) if r.drift()["judge"]])
            other = b if judge is a else a
            groups, series = _slow_group(judge)
            assert other.drift()["groups"] == []  # only the judge holds the groups
            judge.kill()
            view = _judged(other, 0)  # the successor took the lock and the state
            assert view["groups"] == groups
            assert _ood_series(other) == series
            _post(other.url, [completion(f"n{i}") for i in range(5)])
            after = _judged(other, 5)["groups"]
            assert [(g["state"], g["n"]) for g in after] == [("ood", 105)]
