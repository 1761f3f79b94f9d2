"""``POST /v1/forecasts`` against real predictors loaded from a real SQLite registry."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.predictor import Predictor
from registry import MLflowRegistry
from serving import ServingConfig, create_app
from serving._endpoint_cache import NO_HISTORY, EndpointStatsCache
from serving._state import ServiceState

if TYPE_CHECKING:  # mypy maps tests/serving/*.py to top-level modules (no __init__.py)
    from _fixtures import (
        DEVICE,
        LEVELS,
        OTHER,
        SERVED,
        completion,
        new_registry,
        register,
        request,
        settings,
        tiny_predictor,
    )
else:
    from tests.serving._fixtures import (
        DEVICE,
        LEVELS,
        OTHER,
        SERVED,
        completion,
        new_registry,
        register,
        request,
        settings,
        tiny_predictor,
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> MLflowRegistry:
    """tailcast-chat v1 and tailcast-code v1, both champions."""
    reg = new_registry(tmp_path_factory.mktemp("registry"))
    register(reg, SERVED, seed=0)
    register(reg, OTHER, seed=1)
    return reg


@pytest.fixture
def client(registry: MLflowRegistry, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        settings(tmp_path, registry),
        registry=registry,
        config=ServingConfig(max_batch_items=5, max_body_bytes=20_000),
    )
    with TestClient(app) as c:
        yield c


def service(client: TestClient) -> ServiceState:
    state: ServiceState = client.app.state.service  # type: ignore[attr-defined]
    return state


def forecast(client: TestClient, **body: Any) -> Any:
    res = client.post("/v1/forecasts", json=body)
    assert res.status_code == 200, res.text
    return res.json()["forecasts"]


def test_forecasts_answer_every_request_in_order_with_monotone_quantiles(
    client: TestClient,
) -> None:
    items = [
        request(request_id="a", input_tokens=100, runtime={"num_running": 3}),
        request(OTHER, request_id="b", input_tokens=5000, cached_tokens=4000),
        request(request_id="c", prompt="fix the failing test", prompt_class="agent"),
        request(device="mystery-gpu"),
    ]
    out = forecast(client, requests=items)
    assert [f["request_id"] for f in out] == ["a", "b", "c", None]
    assert [f["served_model"] for f in out] == [SERVED, OTHER, SERVED, SERVED]
    assert [f["model_version"] for f in out] == [1, 1, 1, 1]
    assert [f["prompt_class"] for f in out] == ["none", "none", "agent", "none"]
    for f in out:
        assert list(f["quantiles"]) == ["0.5", "0.9", "0.95", "0.99"]
        values = list(f["quantiles"].values())
        assert all(v > 0 for v in values)
        assert values == sorted(values)
        assert f["mean"] > 0
        assert f["cdf"] is None
    # a device the predictor never saw (a typo, say) is answered, and says so
    assert [f["unknown_device"] for f in out] == [False, False, False, True]


def test_quantiles_on_the_grid_match_the_predictor_and_others_interpolate(
    client: TestClient,
) -> None:
    levels = [0.37, *LEVELS[::-1], 0.999]
    (f,) = forecast(client, requests=[request(input_tokens=640)], quantiles=levels)
    assert list(f["quantiles"]) == [
        "0.37",
        "0.99",
        "0.95",
        "0.9",
        "0.75",
        "0.5",
        "0.25",
        "0.05",
        "0.999",
    ]
    expected = tiny_predictor(SERVED, seed=0).predict(
        {
            "served_model": [SERVED],
            "device": [DEVICE],
            "input_tokens": [640],
            "ep_completions": [0],
        },
        1,
    )[0]
    got = [f["quantiles"][str(q)] for q in LEVELS]
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    q = f["quantiles"]
    assert q["0.25"] < q["0.37"] < q["0.5"]
    assert q["0.99"] < q["0.999"]


def test_cdf_at_points_inverts_the_quantiles(client: TestClient) -> None:
    (first,) = forecast(client, requests=[request(input_tokens=300)], quantiles=[0.37, 0.9])
    q37, q90 = first["quantiles"]["0.37"], first["quantiles"]["0.9"]
    (f,) = forecast(client, requests=[request(input_tokens=300)], cdf_at=[0, q37, q90, 2, 1e6])
    cdf = f["cdf"]
    assert 0.0 <= cdf["0"] < 0.05  # the clipped left tail's mass at 0 s
    assert cdf[repr(q37)] == pytest.approx(0.37, abs=1e-9)
    assert cdf[repr(q90)] == pytest.approx(0.9, abs=1e-9)
    assert cdf["1000000"] == pytest.approx(1.0, abs=1e-6)
    probabilities = [cdf[k] for k in ("0", repr(q37), repr(q90), "1000000")]
    assert probabilities == sorted(probabilities)
    assert 0.0 <= cdf["2"] <= 1.0


def test_each_served_model_is_predicted_in_one_vectorized_call(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int]] = []
    for name in (SERVED, OTHER):
        loaded = service(client).models.get(name)
        assert loaded is not None
        predictor: Predictor = loaded.predictor
        original = predictor.predict_with_classes

        def counting(cols: Any, n: int | None = None, *, _o: Any = original, _m: str = name) -> Any:
            calls.append((_m, len(cols["device"])))
            return _o(cols, n)

        monkeypatch.setattr(predictor, "predict_with_classes", counting)
    items = [request(), request(OTHER), request(), request(OTHER), request()]
    out = forecast(client, requests=items)
    assert [f["served_model"] for f in out] == [i["served_model"] for i in items]
    assert sorted(calls) == sorted([(OTHER, 2), (SERVED, 3)])


def test_endpoint_features_come_from_the_store_through_the_cache(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = service(client)
    rows = [completion(f"r{i}", latency_s=2.0 + i) for i in range(5)]
    assert state.store.ingest_rows(rows).accepted == 5
    queries: list[tuple[str, str]] = []
    original = state.store.endpoint_stats

    def counting(served_model: str, device: str, *args: Any, **kwargs: Any) -> Any:
        queries.append((served_model, device))
        return original(served_model, device, *args, **kwargs)

    monkeypatch.setattr(state.store, "endpoint_stats", counting)
    for _ in range(3):
        forecast(client, requests=[request(), request(), request(device="a100")])
    assert sorted(queries) == [(SERVED, "a100"), (SERVED, DEVICE)]  # once each, then cached
    stats = state.endpoints.get(SERVED, DEVICE)
    assert stats.completions == 5
    assert stats.median_latency_s == pytest.approx(4.0)


def test_endpoint_cache_expires_and_survives_a_failing_store() -> None:
    now = [0.0]

    class Store:
        calls = 0
        fail = False

        def endpoint_stats(self, served_model: str, device: str, at: Any, window: int) -> Any:
            Store.calls += 1
            if Store.fail:
                raise OSError("disk gone")
            return NO_HISTORY.model_copy(update={"completions": Store.calls})

    cache = EndpointStatsCache(
        Store(),  # type: ignore[arg-type]
        ttl_s=5.0,
        window=50,
        clock=lambda: now[0],
        spawn=lambda job: job(),
    )
    assert cache.get("m", "d").completions == 1
    now[0] = 4.9
    assert cache.get("m", "d").completions == 1
    now[0] = 5.1
    assert cache.get("m", "d").completions == 1  # expired: answered, refreshed behind
    assert cache.get("m", "d").completions == 2
    assert Store.calls == 2
    Store.fail = True
    now[0] = 20.0
    cache.get("m", "d")
    assert cache.get("m", "d") == NO_HISTORY


def test_an_expired_value_is_answered_while_a_slow_store_refreshes_it() -> None:
    release, asked = threading.Event(), threading.Event()
    now = [0.0]

    class SlowStore:
        calls = 0

        def endpoint_stats(self, served_model: str, device: str, at: Any, window: int) -> Any:
            SlowStore.calls += 1
            if SlowStore.calls > 1:
                asked.set()
                release.wait(10)
            return NO_HISTORY.model_copy(update={"completions": SlowStore.calls})

    cache = EndpointStatsCache(SlowStore(), ttl_s=5.0, window=50, clock=lambda: now[0])  # type: ignore[arg-type]
    assert cache.get("m", "d").completions == 1
    now[0] = 6.0
    for _ in range(100):  # one refresh starts; no call waits for it (a wait would get 2)
        assert cache.get("m", "d").completions == 1
    assert asked.wait(5)
    release.set()
    deadline = time.monotonic() + 5
    while cache.get("m", "d").completions != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.get("m", "d").completions == 2
    assert SlowStore.calls == 2


def test_unknown_served_model_is_404_naming_the_known_ones(client: TestClient) -> None:
    res = client.post("/v1/forecasts", json={"requests": [request(), request("llama-9")]})
    assert res.status_code == 404
    detail = res.json()["detail"]
    assert "llama-9" in detail
    assert f"known: {SERVED}, {OTHER}" in detail or f"known: {OTHER}, {SERVED}" in detail


@pytest.mark.parametrize(
    ("body", "loc", "error"),
    [
        ({"requests": []}, ["body", "requests"], "too_short"),
        ({"requests": [{"device": DEVICE}]}, ["body", "requests", 0, "served_model"], "missing"),
        (
            {"requests": [request(input_tokens=-1)]},
            ["body", "requests", 0, "input_tokens"],
            "greater_than_equal",
        ),
        (
            {"requests": [request(), request(runtime={"kv_cache_util": 1.5})]},
            ["body", "requests", 1, "runtime", "kv_cache_util"],
            "less_than_equal",
        ),
        (
            {"requests": [request(promt="typo")]},
            ["body", "requests", 0, "promt"],
            "extra_forbidden",
        ),
        ({"requests": [request()], "quantiles": [0.5, 1.0]}, ["body", "quantiles", 1], "less_than"),
        ({"requests": [request()], "quantiles": [0.0]}, ["body", "quantiles", 0], "greater_than"),
        ({"requests": [request()], "cdf_at": [-1.0]}, ["body", "cdf_at", 0], "greater_than_equal"),
        (
            {"requests": [request(input_tokens=10, cached_tokens=20)]},
            ["body", "requests", 0],
            "value_error",
        ),
    ],
)
def test_invalid_bodies_are_422_with_the_field_path(
    client: TestClient, body: dict[str, Any], loc: list[Any], error: str
) -> None:
    res = client.post("/v1/forecasts", json=body)
    assert res.status_code == 422, res.text
    errors = res.json()["detail"]
    assert any(e["loc"] == loc and e["type"] == error for e in errors), errors


def test_oversized_batches_and_bodies_are_413(client: TestClient) -> None:
    res = client.post("/v1/forecasts", json={"requests": [request()] * 6})
    assert res.status_code == 413
    assert "limit is 5" in res.json()["detail"]
    big = client.post("/v1/forecasts", json={"requests": [request(prompt="x" * 30_000)]})
    assert big.status_code == 413


def test_the_workflows_previous_call_reaches_the_predictor_as_in_training(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = service(client).models.get(SERVED)
    assert loaded is not None
    seen: list[dict[str, Any]] = []
    original = loaded.predictor.predict_with_classes

    def capture(cols: Any, n: int | None = None) -> Any:
        seen.append(dict(cols))
        return original(cols, n)

    monkeypatch.setattr(loaded.predictor, "predict_with_classes", capture)
    prev = {"output_tokens": 812, "latency_s": 3.5}
    items = [request(workflow_id="w", step=1, previous_call=prev), request(step=0)]
    forecast(client, requests=items)
    # The training frame's names: the predictor's workflow features read these.
    assert seen[-1]["wf_prev_output_tokens"] == [812, None]
    assert seen[-1]["wf_prev_latency_s"] == [3.5, None]
    for bad in ({"output_tokens": 3}, {"latency_s": -1.0}, {"latency_s": 1.0, "x": 1}):
        answer = client.post("/v1/forecasts", json={"requests": [request(previous_call=bad)]})
        assert answer.status_code == 422, bad
        assert "previous_call" in answer.text
