"""Hostile input never earns a 5xx: every reproducer of the serving probe, over real HTTP.

One real service (uvicorn on loopback, the ASGI fast path in front, a real DuckDB store
and MLflow registry, a token set) takes raw bytes through httpx. Each test asserts a
2xx or a 4xx with a reason and, for mixed batches, that the valid items were stored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from core import MAX_PROMPT_CHARS
from core.drift import DriftReportInfo
from feature_store import DuckDBStore
from serving import create_app

if TYPE_CHECKING:  # mypy maps tests/serving/*.py to top-level modules (no __init__.py)
    from _fixtures import SERVED, TOKEN, completion, new_registry, register, request, running
    from _fixtures import settings as make_settings
else:
    from tests.serving._fixtures import (
        SERVED,
        TOKEN,
        completion,
        new_registry,
        register,
        request,
        running,
    )
    from tests.serving._fixtures import settings as make_settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"content-type": "application/json"}
REPORT = "chat-20260101T000000Z"
BAD_UTF8 = (b"\x0f\x90", b'{"requests": ["\xff\xfe"]}')
BODY_ROUTES = (
    "/v1/forecasts",
    "/v1/completions",
    "/predict",
    "/predict/bulk",
    "/predict/bulk/strict",
    "/add_training_data_bulk",
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """The service with a token and one saved drift report, as an httpx client."""
    home = tmp_path_factory.mktemp("home")
    registry = new_registry(tmp_path_factory.mktemp("registry"))
    register(registry, SERVED)
    store = DuckDBStore(home / "store.duckdb")
    store.record_drift_report(
        DriftReportInfo(
            report_id=REPORT,
            served_model=SERVED,
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            path=str(home / "drift_reports" / f"{REPORT}.html"),
            reference_rows=1,
            current_rows=1,
        )
    )
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith(("TAILCAST_", "MLFLOW_"))]:
            env.delenv(name)
        app = create_app(make_settings(home, registry, token=TOKEN), store=store, registry=registry)
        with running(app) as url, httpx.Client(base_url=url, timeout=60.0) as c:
            yield c
    store.close()


def post_raw(client: httpx.Client, path: str, body: bytes, auth: bool = True) -> httpx.Response:
    """POST ``body`` as is (JSON content type; the token unless ``auth`` is false)."""
    return client.post(path, content=body, headers={**JSON, **(AUTH if auth else {})})


def completions(client: httpx.Client, items: list[Any]) -> dict[str, Any]:
    """POST completions (escaping lone surrogates as JSON does); the 200 answer."""
    r = post_raw(client, "/v1/completions", json.dumps({"completions": items}).encode())
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def assert_stored(client: httpx.Client, items: list[dict[str, Any]]) -> None:
    """Each item is stored already: sending it again counts it as a duplicate."""
    again = completions(client, items)
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, len(items), [])


def rejected(answer: dict[str, Any]) -> list[tuple[int, str | None]]:
    return [(r["index"], r["field"]) for r in answer["rejected"]]


def detail(r: httpx.Response, status: int = 422) -> list[dict[str, Any]]:
    """The 4xx error list, after checking the status and that each error has a reason."""
    assert r.status_code == status, r.text
    errors: list[dict[str, Any]] = r.json()["detail"]
    assert errors
    assert all(e["msg"] for e in errors)
    return errors


def test_latencies_the_store_cannot_hold_are_rejected_alone(client: httpx.Client) -> None:
    items = [
        completion("lat-1e300", latency_s=1e300),
        completion("lat-2^64", latency_s=2**64),
        completion("lat-late", submitted_at="9999-12-31T23:59:59Z", latency_s=5.0),
        completion("lat-ok"),
    ]
    answer = completions(client, items)
    assert rejected(answer) == [(0, "latency_s"), (1, "latency_s"), (2, "latency_s")]
    assert "9999-12-31" in answer["rejected"][0]["reason"]
    assert "out of range" in answer["rejected"][1]["reason"]
    assert answer["accepted"] == 1
    assert_stored(client, items[3:])


def test_lone_surrogates_are_rejected_alone(client: httpx.Client) -> None:
    fields = ("request_id", "served_model", "device", "prompt", "prompt_class", "workflow_id")
    items = [{**completion(f"sur-{f}"), f: "x\ud800"} for f in fields]
    items.append(completion("sur-ok", prompt="caf\u00e9 \U0001f600"))
    answer = completions(client, items)
    assert rejected(answer) == list(enumerate(fields))
    assert all("surrogate" in r["reason"] for r in answer["rejected"])
    assert answer["accepted"] == 1
    assert_stored(client, items[-1:])


@pytest.mark.parametrize("body", BAD_UTF8, ids=["control", "in-string"])
@pytest.mark.parametrize("path", BODY_ROUTES)
def test_bodies_that_are_not_utf8_are_422(client: httpx.Client, path: str, body: bytes) -> None:
    (error,) = detail(post_raw(client, path, body))
    assert (error["type"], error["loc"]) == ("json_invalid", ["body"])


def test_non_finite_numbers_are_422(client: httpx.Client) -> None:
    pod = b'"input_token_length": 1, "num_request_waiting": 0, "num_request_running": 0, '
    pod += b'"num_tokens_generated": 0, "prefix_cache_score": 0'
    errors = detail(post_raw(client, "/predict", b'{"kv_cache_percentage": NaN, ' + pod + b"}"))
    assert [e["loc"] for e in errors] == [["body", "kv_cache_percentage"]]
    item = json.dumps(request(input_tokens=10)).encode()
    forecast = b'{"requests": [' + item + b'], "quantiles": [NaN], "cdf_at": [Infinity]}'
    errors = detail(post_raw(client, "/v1/forecasts", forecast))
    assert [e["loc"] for e in errors] == [["body", "quantiles", 0], ["body", "cdf_at", 0]]
    entry = b'{"entries": [{"kv_cache_percentage": 0.5, "actual_ttft_ms": -Infinity, '
    entry += b'"actual_tpot_ms": 1, ' + pod + b"}]}"
    errors = detail(post_raw(client, "/add_training_data_bulk", entry))
    assert [e["loc"] for e in errors] == [["body", "entries", 0, "actual_ttft_ms"]]


def test_numeric_overflow_is_422(client: httpx.Client) -> None:
    huge = b"1" + b"0" * 400
    item = b'{"served_model": "chat", "device": "h100-sxm", "input_tokens": ' + huge + b"}"
    errors = detail(post_raw(client, "/v1/forecasts", b'{"requests": [' + item + b"]}"))
    assert [e["loc"] for e in errors] == [["body", "requests", 0, "input_tokens"]]
    pod = b'{"kv_cache_percentage": 0.5, "input_token_length": ' + huge + b", "
    pod += b'"num_request_waiting": 0, "num_request_running": 0, "num_tokens_generated": 0, '
    pod += b'"prefix_cache_score": 0}'
    errors = detail(post_raw(client, "/predict", pod))
    assert [e["loc"] for e in errors] == [["body", "input_token_length"]]
    lenient = post_raw(client, "/predict/bulk", b'{"requests": [' + pod + b"]}")
    assert lenient.status_code == 422, lenient.text  # llm-d answers 422, valid items kept
    (error,) = lenient.json()["errors"]
    assert error["index"] == 0
    assert "input_token_length" in error["error"]
    answer = completions(client, [completion("ovf", input_tokens=10**400), completion("ovf-ok")])
    assert rejected(answer) == [(0, "input_tokens")]
    assert_stored(client, [completion("ovf-ok")])


def test_one_prompt_limit_for_completions_and_forecasts(client: httpx.Client) -> None:
    longest, over = "p" * MAX_PROMPT_CHARS, "p" * (MAX_PROMPT_CHARS + 1)
    items = [completion("long-over", prompt=over), completion("long-max", prompt=longest)]
    answer = completions(client, items)
    assert rejected(answer) == [(0, "prompt")]
    assert str(MAX_PROMPT_CHARS) in answer["rejected"][0]["reason"]
    assert_stored(client, items[1:])
    r = client.post("/v1/forecasts", json={"requests": [request(prompt=over)]})
    (error,) = detail(r)
    assert error["loc"] == ["body", "requests", 0, "prompt"]
    assert str(MAX_PROMPT_CHARS) in error["msg"]
    ok = client.post("/v1/forecasts", json={"requests": [request(prompt=longest)]})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("path", ["/v1/completions", "/add_training_data_bulk"])
def test_an_unauthenticated_write_is_401_before_its_body_is_read(
    client: httpx.Client, path: str
) -> None:
    unauthenticated = post_raw(client, path, b"{", auth=False)
    assert unauthenticated.status_code == 401, unauthenticated.text
    assert unauthenticated.json()["detail"] == "missing or invalid bearer token"
    (error,) = detail(post_raw(client, path, b"{"))
    assert error["type"] == "json_invalid"


def test_drift_report_paths_are_shown_only_to_the_token_holder(client: httpx.Client) -> None:
    (public,) = client.get("/v1/drift").json()["reports"]
    assert public["path"] == f"{REPORT}.html"
    (private,) = client.get("/v1/drift", headers=AUTH).json()["reports"]
    assert Path(private["path"]).is_absolute()
    assert Path(private["path"]).name == public["path"]


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/v1/forecasts", {"requests": [request()], "cdf_at": [False]}, ["cdf_at", 0]),
        ("/v1/forecasts", {"requests": [request()], "quantiles": [True]}, ["quantiles", 0]),
        ("/v1/forecasts", {"requests": [request(input_tokens=True)]}, ["requests", 0]),
        ("/predict", {"kv_cache_percentage": True}, ["kv_cache_percentage"]),
    ],
)
def test_booleans_are_not_numbers(
    client: httpx.Client, path: str, body: dict[str, Any], loc: list[Any]
) -> None:
    errors = detail(client.post(path, json=body))
    assert any(e["loc"][1 : 1 + len(loc)] == loc for e in errors), errors


def test_a_lone_surrogate_in_a_forecast_is_422(client: httpx.Client) -> None:
    body = json.dumps({"requests": [request(prompt="x\udc00")]}).encode()
    (error,) = detail(post_raw(client, "/v1/forecasts", body))
    assert error["type"] == "json_invalid"
