"""Drift in the running service: completions feed the monitor, alerts reach a webhook.

Real uvicorn on loopback, a real MLflow registry (SQLite), a real DuckDB store file
and a real HTTP receiver for the alerts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

import serving._judge
from core import Settings
from core.drift import DriftEvent
from drift import SIGNATURE_HEADER, verify
from feature_store import DuckDBStore
from registry import MLflowRegistry, ModelVersion
from serving import ServingConfig, create_app, record_retraining
from serving._drift import DriftService
from serving._endpoint_cache import EndpointStatsCache
from serving._forecast import forecast_group
from serving._models import LoadedModel, ModelTable
from serving.schemas import ForecastRequest

if TYPE_CHECKING:  # mypy maps tests/<pkg>/*.py to top-level modules (no __init__.py)
    from _fixtures import (
        DEVICE,
        SERVED,
        TOKEN,
        completion,
        new_registry,
        register,
        running,
        tiny_predictor,
    )
    from _receiver import Receiver
else:
    from tests.drift._receiver import Receiver
    from tests.serving._fixtures import (
        DEVICE,
        SERVED,
        TOKEN,
        completion,
        new_registry,
        register,
        running,
        tiny_predictor,
    )

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "drift-hook-secret"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> MLflowRegistry:
    reg = new_registry(tmp_path_factory.mktemp("registry"))
    register(reg, SERVED)
    return reg


def _settings(home: Path, registry: MLflowRegistry, urls: list[str]) -> Settings:
    return Settings(
        home=home,
        mlflow_tracking_uri=registry.tracking_uri,
        api_token=TOKEN,
        drift_webhook_urls=urls,
        drift_webhook_secret=SECRET,
    )


def _wait(check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return result


def _attempts(client: httpx.Client, event_id: str, n: int) -> list[tuple[int, int]] | None:
    """The delivery log of ``event_id`` as (attempt, status) once it has ``n`` entries."""
    r = client.get("/v1/drift/deliveries", params={"event_id": event_id})
    log = [(int(a["attempt"]), int(a["status_code"])) for a in r.json()]
    return log if len(log) >= n else None


def _post(client: httpx.Client, items: list[dict[str, Any]]) -> dict[str, Any]:
    r = client.post("/v1/completions", json={"completions": items}, headers=AUTH)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


@pytest.mark.slow
def test_slow_completions_turn_the_group_ood_alert_and_report(
    registry: MLflowRegistry, tmp_path: Path
) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    with Receiver(fail_first=1) as rx:
        app = create_app(
            _settings(tmp_path, registry, [rx.url]),
            store=store,
            registry=registry,
            config=ServingConfig(max_batch_items=100),
        )
        with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            before = client.get("/v1/drift").json()
            assert before["groups"] == []
            # 99 completions far slower than any forecast: not judged yet (min_samples 100).
            slow = [completion(f"s{i}", latency_s=5000.0) for i in range(99)]
            assert _post(client, slow)["accepted"] == 99
            app.state.drift.flush()
            (group,) = client.get("/v1/drift").json()["groups"]
            assert (group["state"], group["n"]) == ("ok", 99)
            # One more (plus an invalid item and a retry of a judged one) tips it over.
            batch = [completion("s99", latency_s=5000.0), completion("bad", latency_s=-1.0)]
            assert _post(client, [*batch, completion("s0", latency_s=5000.0)])["accepted"] == 1
            app.state.drift.flush()
            view = client.get("/v1/drift").json()
            (group,) = view["groups"]
            assert group["state"] == "ood"
            assert group["n"] == 100  # the rejected and the re-sent one were not counted
            assert group["group"]["device"] == DEVICE
            assert group["statistics"]["ks_pvalue"] < group["statistics"]["test_alpha"]
            assert view["observed"] == 100
            assert (view["judge"], view["inbox"]) == (True, 0)
            (event,) = view["events"]
            assert event["kind"] == "ood"
            assert event["n_samples"] == 100
            assert event["model_version"] == "1"
            # The webhook fails once, then gets the signed alert.
            _wait(lambda: any(r.status == 200 for r in rx.requests))
            ok = next(r for r in rx.requests if r.status == 200)
            assert verify(ok.body, SECRET, ok.headers[SIGNATURE_HEADER])
            sent = DriftEvent.model_validate(json.loads(ok.body)["event"])
            assert sent.event_id == event["event_id"]
            # The deliverer logs an attempt once the receiver has answered: wait for it.
            log = _wait(lambda: _attempts(client, sent.event_id, 2))
            assert log == [(1, 503), (2, 200)]
            # The OOD event also wrote a report (evidently, logged to MLflow).
            reports = _wait(lambda: client.get("/v1/drift").json()["reports"], 120.0)
            rid = reports[0]["report_id"]
            assert rid.startswith(f"{SERVED}-")
            assert reports[0]["mlflow_run_id"]
            assert "u" in {k.split(":", 1)[1] for k in reports[0]["summary"] if ":" in k}
            page = client.get(f"/v1/drift/reports/{rid}")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert "<html" in page.text.lower()
            missing = client.get("/v1/drift/reports/no-such-report")
            assert missing.status_code == 404
            assert "no-such-report" in missing.json()["detail"]
            # An on-demand report needs the token and a served model with judged data.
            assert (
                client.post("/v1/drift/reports", params={"served_model": SERVED}).status_code == 401
            )
            unknown = client.post(
                "/v1/drift/reports", params={"served_model": "nope"}, headers=AUTH
            )
            assert unknown.status_code == 404
            assert "nope" in unknown.json()["detail"]
    assert [e.event_id for e in store.drift_events()] == [event["event_id"]]
    store.close()


def test_pending_alerts_are_delivered_by_the_next_service_run(
    registry: MLflowRegistry, tmp_path: Path
) -> None:
    path = tmp_path / "store.duckdb"
    with Receiver() as rx:
        # A previous run queued an alert it could not deliver before it stopped.
        first = DuckDBStore(path)
        first.enqueue_alert("ev-1", rx.url, '{"type":"tailcast.drift.v1"}', _now())
        first.close()
        store = DuckDBStore(path)
        app = create_app(_settings(tmp_path, registry, [rx.url]), store=store, registry=registry)
        with running(app):
            _wait(lambda: store.alerts(status="delivered"), 30.0)
        assert [r.body for r in rx.requests] == [b'{"type":"tailcast.drift.v1"}']
        assert verify(rx.requests[0].body, SECRET, rx.requests[0].headers[SIGNATURE_HEADER])
        store.close()


def _now() -> datetime:
    return datetime.now(UTC)


def test_acknowledgment_never_waits_for_the_judge(
    registry: MLflowRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving._judge, "RETRY_S", 0.05)
    store = DuckDBStore(tmp_path / "store.duckdb")
    other_judge = store.try_lock("drift-judge")  # another replica judges: this one waits
    assert other_judge is not None
    app = create_app(_settings(tmp_path, registry, []), store=store, registry=registry)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        try:
            body = _post(client, [completion(f"r{i}") for i in range(3)])
            assert body["accepted"] == 3  # answered (and stored) while nobody here judges
            view = client.get("/v1/drift").json()
            assert (view["observed"], view["judge"], view["inbox"]) == (0, False, 3)
            assert view["replica"] == app.state.drift.replica
        finally:
            other_judge.release()  # the other replica stops: this one takes over
        app.state.drift.flush()
        view = client.get("/v1/drift").json()
        assert (view["observed"], view["judge"], view["inbox"]) == (3, True, 0)
        assert [g["n"] for g in view["groups"]] == [3]
        metrics = client.get("/metrics").text
        assert "tailcast_drift_judge 1.0" in metrics
        assert "tailcast_drift_inbox_backlog 0.0" in metrics
    store.close()


def test_a_batch_retried_after_a_restart_is_judged_once(
    registry: MLflowRegistry, tmp_path: Path
) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    batch = [completion(f"r{i}") for i in range(3)]
    first = create_app(_settings(tmp_path, registry, []), store=store, registry=registry)
    with running(first) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert _post(client, batch)["accepted"] == 3
        first.state.drift.flush()
        assert client.get("/v1/drift").json()["observed"] == 3
    # a new service process (its in-memory memory of ids is empty) gets the client's
    # retry of the same batch plus one new completion: only the new one is judged
    second = create_app(_settings(tmp_path, registry, []), store=store, registry=registry)
    with running(second) as url, httpx.Client(base_url=url, timeout=30) as client:
        body = _post(client, [*batch, completion("r3")])
        assert (body["accepted"], body["duplicates"]) == (1, 3)
        second.state.drift.flush()
        view = client.get("/v1/drift").json()
        assert view["observed"] == 1
        assert [g["n"] for g in view["groups"]] == [4]  # the stored group, continued
    store.close()


def _loaded(version: int, seed: int = 0) -> LoadedModel:
    mv = ModelVersion(
        name=f"tailcast-{SERVED}",
        version=version,
        aliases=("champion",),
        run_id=None,
        created_at=_now(),
    )
    return LoadedModel(SERVED, tiny_predictor(SERVED, seed), mv, _now())


def test_service_judges_with_the_champions_forecast_and_resets_on_a_new_version(
    tmp_path: Path,
) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    table = ModelTable()
    table.swap(_loaded(1))
    endpoints = EndpointStatsCache(store, ttl_s=60.0, window=50)
    settings = Settings(home=tmp_path)
    service = DriftService(store, table, endpoints, settings, reports=False)
    try:
        rows: list[Any] = [
            completion("a", latency_s=3.0, input_tokens=500),
            completion("b", latency_s=None),  # no outcome: not judged
            completion("c", served_model="no-champion"),
            "not a record",
        ]
        assert service.observe_rows(rows) == []
        assert service.observe_rows([completion("a", latency_s=3.0, input_tokens=500)]) == []
        assert service.observed == 1
        (status,) = service.monitor.states()
        assert status.n == 1
        # u is the CDF that POST /v1/forecasts answers at the observed latency.
        request = ForecastRequest(served_model=SERVED, device=DEVICE, input_tokens=500)
        model = table.get(SERVED)
        assert model is not None
        (answer,) = forecast_group(model, [request], [0.5], [3.0], endpoints.get)
        window = service._current[SERVED]
        assert window[0]["u"] == pytest.approx(answer["cdf"]["3"])
        # 99 far slower completions turn the group OOD; the event is stored.
        events = service.observe_rows([completion(f"s{i}", latency_s=9e3) for i in range(99)])
        assert [(e.kind, e.n_samples, e.model_version) for e in events] == [("ood", 100, "1")]
        assert store.drift_events() == events
        # A new champion version starts a fresh judgement of that served model.
        table.swap(_loaded(2, seed=1))
        service.observe_rows([completion("n1", latency_s=3.0)])
        (status,) = service.monitor.states()
        assert (status.state, status.n, status.model_version) == ("ok", 1, "2")
        assert len(service._current[SERVED]) == 1
    finally:
        service.stop()
        store.close()


def test_retraining_outcomes_are_counted_and_versions_show_their_verdict(
    registry: MLflowRegistry, tmp_path: Path
) -> None:
    lost = register(registry, SERVED, promote=False)  # a challenger that lost
    registry.tag_version(
        SERVED,
        lost.version,
        {"outcome": "not promoted", "outcome_detail": "challenger 1.5 s vs champion 1.2 s"},
    )
    store = DuckDBStore(tmp_path / "store.duckdb")
    app = create_app(_settings(tmp_path, registry, []), store=store, registry=registry)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for outcome in ("not_promoted", "not_promoted", "skipped"):
            record_retraining(app, SERVED, outcome)
        metrics = client.get("/metrics").text
        name = "tailcast_drift_retrainings_total"
        assert f'{name}{{outcome="not_promoted",served_model="{SERVED}"}} 2.0' in metrics
        assert f'outcome="skipped",served_model="{SERVED}"}} 1.0' in metrics
        (model,) = client.get("/v1/models").json()["models"]
        verdict = {v["version"]: (v["outcome"], v["outcome_detail"]) for v in model["versions"]}
        assert verdict[lost.version] == ("not promoted", "challenger 1.5 s vs champion 1.2 s")
    store.close()
