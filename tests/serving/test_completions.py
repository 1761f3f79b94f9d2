"""``POST /v1/completions``: durable, idempotent, per-item validation, auth and limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from feature_store import open_store
from registry import MLflowRegistry
from serving import ServingConfig, create_app

if TYPE_CHECKING:  # mypy maps tests/serving/*.py to top-level modules (no __init__.py)
    from _fixtures import SERVED, TOKEN, completion, new_registry, register, settings
else:
    from tests.serving._fixtures import SERVED, TOKEN, completion, new_registry, register, settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> MLflowRegistry:
    reg = new_registry(tmp_path_factory.mktemp("registry"))
    register(reg, SERVED)
    return reg


def make_client(registry: MLflowRegistry, home: Path, token: str | None) -> TestClient:
    app = create_app(
        settings(home, registry, token=token),
        registry=registry,
        config=ServingConfig(max_batch_items=4),
    )
    return TestClient(app)


@pytest.fixture
def client(registry: MLflowRegistry, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(registry, tmp_path, TOKEN) as c:
        yield c


def post(client: TestClient, items: list[Any], headers: dict[str, str] = AUTH) -> Any:
    return client.post("/v1/completions", json={"completions": items}, headers=headers)


def test_valid_items_are_stored_invalid_ones_rejected_alone_and_retries_are_duplicates(
    registry: MLflowRegistry, tmp_path: Path
) -> None:
    items: list[Any] = [
        completion("a"),
        completion("b", latency_s=-1.0),
        completion("c", cached_tokens=900),  # more cached than input tokens
        "not an object",
    ]
    with make_client(registry, tmp_path, TOKEN) as client:
        first = post(client, items)
        assert first.status_code == 200, first.text
        body = first.json()
        assert (body["accepted"], body["duplicates"]) == (1, 0)
        rejected = {r["index"]: r for r in body["rejected"]}
        assert sorted(rejected) == [1, 2, 3]
        assert rejected[1]["field"] == "latency_s"
        assert "> 0" in rejected[1]["reason"]
        assert rejected[2]["field"] == "cached_tokens"
        assert "object" in rejected[3]["reason"]

        again = post(client, [completion("a"), completion("d"), completion("d")]).json()
        assert (again["accepted"], again["duplicates"], again["rejected"]) == (1, 2, [])

        retry = post(client, [completion("a"), completion("d")]).json()
        assert (retry["accepted"], retry["duplicates"]) == (0, 2)

        metrics = client.get("/metrics").text
        assert "tailcast_completions_accepted_total 2.0" in metrics
        assert "tailcast_completions_duplicates_total 4.0" in metrics
        assert "tailcast_completions_rejected_total 3.0" in metrics
    # Acknowledged means durable: the records are in the store file after shutdown.
    with open_store(tmp_path / "store.duckdb", read_only=True) as store:
        frame = store.training_frame(SERVED, columns=["request_id", "latency_s"])
    assert sorted(frame.column("request_id").to_pylist()) == ["a", "d"]


def test_unknown_and_non_scalar_fields_reject_only_their_item(client: TestClient) -> None:
    body = post(
        client, [completion("x", colour="red"), completion("y", prompt={"nested": 1})]
    ).json()
    assert body["accepted"] == 0
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(0, "colour"), (1, "prompt")]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["missing", "wrong", "not-bearer"],
)
def test_a_configured_token_is_required(client: TestClient, headers: dict[str, str]) -> None:
    res = post(client, [completion("z")], headers=headers)
    assert res.status_code == 401
    assert res.headers["www-authenticate"] == "Bearer"
    assert post(client, [completion("z")]).json()["accepted"] == 1


def test_no_token_configured_means_no_auth(registry: MLflowRegistry, tmp_path: Path) -> None:
    with make_client(registry, tmp_path, None) as client:
        assert post(client, [completion("open")], headers={}).json()["accepted"] == 1


def test_oversized_batch_is_413_and_stores_nothing(client: TestClient) -> None:
    res = post(client, [completion(f"r{i}") for i in range(5)])
    assert res.status_code == 413
    assert "limit is 4" in res.json()["detail"]
    assert post(client, [completion("r0")]).json()["accepted"] == 1


def test_a_body_that_is_not_a_batch_is_422(client: TestClient) -> None:
    res = client.post("/v1/completions", json={"records": []}, headers=AUTH)
    assert res.status_code == 422
    locs = [e["loc"] for e in res.json()["detail"]]
    assert ["body", "completions"] in locs


def test_concurrent_calls_share_transactions_and_each_gets_its_own_outcome(
    registry: MLflowRegistry, tmp_path: Path
) -> None:
    import asyncio

    import httpx

    app = create_app(settings(tmp_path, registry, token=TOKEN), registry=registry)

    async def run() -> list[Any]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as http,
        ):
            calls = [
                # each call: its own id, an id every call shares, and one bad item
                [completion(f"own-{i}"), completion("shared"), completion(f"bad-{i}", latency_s=-1)]
                for i in range(40)
            ]
            answers = await asyncio.gather(
                *(
                    http.post("/v1/completions", json={"completions": c}, headers=AUTH)
                    for c in calls
                )
            )
            writer = app.state.service.completions
            return [[a.json() for a in answers], writer.batches]

    bodies, transactions = asyncio.run(run())
    assert transactions < 40  # calls that arrived together were stored together
    assert sum(b["accepted"] for b in bodies) == 41  # 40 own ids + "shared" once
    assert sum(b["duplicates"] for b in bodies) == 39
    for body in bodies:  # indices and lines are the call's own
        assert [(r["index"], r["field"]) for r in body["rejected"]] == [(2, "latency_s")]
        assert body["accepted"] + body["duplicates"] == 2
    with open_store(tmp_path / "store.duckdb") as store:
        assert store.stats().records == 41


def test_completions_for_an_unserved_model_are_stored_and_named(client: TestClient) -> None:
    res = post(client, [completion("u1", served_model="new-model"), completion("u2")])
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["accepted"] == 2  # training data for the new model's first predictor
    assert body["unserved_models"] == ["new-model"]
    again = post(client, [completion("u3")]).json()
    assert again["unserved_models"] == []
