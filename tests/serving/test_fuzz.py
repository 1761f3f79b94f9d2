"""Schema-driven fuzzing of the whole API: schemathesis against the real service.

A real service (tiny champions, a workflow bundle, a DuckDB store, the API token set
and sent) on real uvicorn on a free loopback port; every operation of its own OpenAPI
document gets schema-valid and schema-violating requests, derandomized. No answer may
be 5xx, undocumented, or off its documented schema. The bounded run here makes
:data:`MIN_REQUESTS` requests or more; ``python -m benchmarks fuzz`` runs 5,000+.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from serving._openapi import unresolved_refs

if TYPE_CHECKING:  # mypy maps tests/<pkg>/*.py to top-level modules (no __init__.py)
    from _fixtures import DEVICE, SERVED, completion
    from _fuzz import AUTH, Budget, fuzz, report, served
else:
    from tests.serving._fixtures import DEVICE, SERVED, completion
    from tests.serving._fuzz import AUTH, Budget, fuzz, report, served

#: Third-party import-time noise (mlflow's SQLAlchemy store; evidently's imports).
pytestmark = [
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
    pytest.mark.filterwarnings("ignore:numpy.core is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Use of deprecated class 'DependencyKwarg'"),
    pytest.mark.filterwarnings("ignore:Call to deprecated function 'Dependency'"),
]
BUDGET = Budget(positive=30, negative=18, pinned=12)
MIN_REQUESTS = 1800


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    with served(tmp_path_factory.mktemp("fuzz")) as (url, document):
        yield url, document


def test_every_openapi_reference_resolves(service: tuple[str, dict[str, Any]]) -> None:
    _, document = service
    assert unresolved_refs(document) == []
    schemas = document["components"]["schemas"]
    assert {"ReplicaSelectionRequest", "Candidate", "SelectionSpec"} <= set(schemas) or (
        "Candidate" in schemas and "SelectionSpec" in schemas
    )


@pytest.mark.slow
def test_fuzzing_every_operation_finds_no_server_error(
    service: tuple[str, dict[str, Any]],
) -> None:
    url, document = service
    operations = {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    }
    started = time.monotonic()
    result = fuzz(url, document, BUDGET)
    assert set(result.requests) == operations, "every operation was called"
    assert result.total >= MIN_REQUESTS
    assert result.server_errors() == 0, report(result)
    assert result.failures == [], report(result)
    assert time.monotonic() - started < 240


def test_a_drift_report_of_too_few_judged_completions_is_a_404_with_the_reason(
    service: tuple[str, dict[str, Any]],
) -> None:
    url, _ = service
    with httpx.Client(base_url=url, headers=AUTH, timeout=120) as client:
        posted = client.post("/v1/completions", json={"completions": [completion("tiny-1")]})
        assert posted.json()["accepted"] == 1
        deadline = time.monotonic() + 60
        while client.get("/v1/drift").json()["observed"] < 1:  # the judge took it
            assert time.monotonic() < deadline, "the drift judge never judged the completion"
            time.sleep(0.1)
        answer = client.post("/v1/drift/reports", params={"served_model": SERVED})
    assert answer.status_code == 404
    detail = answer.json()["detail"]
    assert SERVED in detail
    assert "at least 10" in detail
    assert DEVICE  # the completion's device is the champion's


ARROW = {"content-type": "application/vnd.apache.arrow.stream"}


@pytest.mark.parametrize(
    ("path", "kwargs", "status"),
    [
        ("/v1/store/frames", {"json": {"columns": []}}, 422),
        ("/v1/store/drift/claims", {"json": {"now": "9999-12-31T23:59:59Z", "holder": "h"}}, 422),
        (
            "/v1/store/drift/claims",
            {"json": {"now": "2026-01-01T00:00:00Z", "holder": "h", "lease_s": 1e300}},
            422,
        ),
        ("/v1/store/ingest", {"content": b"\xff\xff\x04\x00", "headers": ARROW}, 400),
        ("/v1/store/embeddings?encoder_id=e", {"content": b"\xff\xff", "headers": ARROW}, 400),
        ("/v1/store/embeddings/lookup?encoder_id=e", {"content": b"x", "headers": ARROW}, 400),
    ],
)
def test_inputs_that_once_earned_a_500_are_client_errors(
    service: tuple[str, dict[str, Any]], path: str, kwargs: dict[str, Any], status: int
) -> None:
    url, document = service
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
        answer = client.post(path, **kwargs)
    assert answer.status_code == status, answer.text
    documented = document["paths"][path.split("?")[0]]["post"]["responses"]
    assert str(status) in documented
