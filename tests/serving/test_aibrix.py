"""The AIBrix external router over real HTTP: the v1alpha1 contract and tail-aware choices."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from scheduler_hooks._select import tail_aware_choice
from scheduler_hooks.client import GRID, ForecastItem, TailcastClient
from serving.routes.aibrix import DEFAULT_SLOTS, MEDIA_TYPE

if TYPE_CHECKING:
    from _fixtures import DEVICE, SERVED
    from _hook_fixtures import serving_champion
else:
    from tests.serving._fixtures import DEVICE, SERVED
    from tests.serving._hook_fixtures import serving_champion

pytestmark = pytest.mark.slow
HEADERS = {"content-type": MEDIA_TYPE, "accept": MEDIA_TYPE, "x-request-id": "req-1"}


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_champion(tmp_path_factory.mktemp("aibrix")) as url:
        yield url


def candidate(name: str, running: int | None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": f"default/{name}", "ports": [8000, 9000], **extra}
    if running is not None:
        out["metrics"] = {"runningRequests": running, "kvCacheUsage": 0.2}
    return out


def selection(cands: list[dict[str, Any]], mode: str = "Advisory", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "routing.aibrix.ai/v1alpha1",
        "kind": "ReplicaSelectionRequest",
        "metadata": {"requestId": "req-1"},
        "spec": {"model": SERVED, "policyMode": mode, "candidates": cands, **spec},
    }


def post(http: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return http.post("/v1/aibrix/select", json=body, headers=HEADERS)


def test_selected_answer_follows_the_contract_and_tail_aware(base_url: str) -> None:
    cands = [
        candidate("a", 40, attributes={"tailcast.io/slots": "1", "tailcast.io/device": DEVICE}),
        candidate("b", 3),
        candidate("c", 9, attributes={"zone": "x"}),
    ]
    ctx = {"attributes": {"tailcast.io/input-tokens": "700"}}
    with httpx.Client(base_url=base_url, timeout=10) as http:
        res = post(http, selection(cands, "Advisory", policyContext=ctx))
    assert res.status_code == 200, res.text
    assert res.headers["content-type"] == MEDIA_TYPE
    out = res.json()
    assert (out["apiVersion"], out["kind"]) == (
        "routing.aibrix.ai/v1alpha1",
        "ReplicaSelectionResponse",
    )
    assert out["metadata"]["requestId"] == "req-1"
    assert out["metadata"]["decisionId"] == "tailcast-tail_aware-v1"
    assert out["status"]["decision"] == "Selected"
    target = out["status"]["target"]
    assert target["port"] == 8000

    # the same decision from the public forecasts of each candidate
    items = [
        ForecastItem(SERVED, DEVICE, input_tokens=700, num_running=n, kv_cache_util=0.2)
        for n in (40, 3, 9)
    ]
    with TailcastClient(base_url) as client:
        rows = np.stack([f.values() for f in client.forecasts(items, GRID)])
    want = tail_aware_choice(GRID, rows, [40, 3, 9], [1, DEFAULT_SLOTS, DEFAULT_SLOTS])
    assert target["id"] == cands[want]["id"]
    assert target["id"] != "default/a"  # 40 requests queued on one slot


def test_unknown_model_falls_back_by_mode(base_url: str) -> None:
    cands = [candidate("b", 5), candidate("a", 2), candidate("c", None)]
    with httpx.Client(base_url=base_url, timeout=10) as http:
        advisory = post(
            http, {**selection(cands), "spec": {**selection(cands)["spec"], "model": "x"}}
        )
        body = selection(cands, "Authoritative")
        body["spec"]["model"] = "x"
        authoritative = post(http, body)
        metrics = http.get("/metrics").text
    assert advisory.status_code == 200
    assert advisory.json()["status"] == {"decision": "NoDecision", "reason": "UnknownModel"}
    assert "decisionId" not in advisory.json()["metadata"]
    status = authoritative.json()["status"]
    assert status["target"] == {"id": "default/c", "port": 8000}  # no metrics: 0 running
    assert 'tailcast_aibrix_decisions_total{decision="NoDecision",served_model="x"} 1.0' in metrics


def test_invalid_requests_are_422_with_the_field(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        empty = post(http, selection([]))
        wrong = post(http, {**selection([candidate("a", 1)]), "apiVersion": "v2"})
        bad_metric = post(http, selection([candidate("a", -1)]))
        not_json = http.post("/v1/aibrix/select", content=b"{", headers=HEADERS)
    assert empty.status_code == 422
    assert empty.json()["detail"][0]["loc"] == ["body", "spec", "candidates"]
    assert wrong.json()["detail"][0]["loc"] == ["body", "apiVersion"]
    loc = bad_metric.json()["detail"][0]["loc"]
    assert loc == ["body", "spec", "candidates", 0, "metrics", "runningRequests"]
    assert not_json.status_code == 422


def test_extra_fields_are_ignored_and_single_port_kept(base_url: str) -> None:
    body = selection([{"id": "ns/only", "ports": [7000], "future": 1}])
    body["spec"]["newField"] = {"x": 1}
    with httpx.Client(base_url=base_url, timeout=10) as http:
        res = post(http, body)
    assert res.json()["status"]["target"] == {"id": "ns/only", "port": 7000}
