"""Schema-driven fuzzing of the service with schemathesis (the fuzz test and benchmark).

:func:`fuzz_service` builds a real service (tiny champions for ``chat``, ``llm-d.ttft``
and ``llm-d.tpot`` in a SQLite MLflow registry, a tiny workflow bundle, a DuckDB store,
the API token set), serves it with real uvicorn on a free loopback port and runs
:func:`fuzz` against its own OpenAPI document: every operation, schema-valid
(positive) and schema-violating (negative) inputs, derandomized, with the token sent.
Every answer is checked by schemathesis: no 5xx, the status documented, the body
conforming to the documented schema and content type. Server tracebacks are captured
from uvicorn's error log, so a 500 is reported with the line that raised.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from feature_store import ARROW_STREAM, table_bytes
from serving import create_app

if TYPE_CHECKING:  # mypy maps tests/<pkg>/*.py to top-level modules (no __init__.py)
    from _fixtures import SERVED, TOKEN, new_registry, register, running
    from _fixtures import settings as service_settings
    from _workflow_fixtures import tiny_model
else:
    from tests.core.workflow._workflow_fixtures import tiny_model
    from tests.serving._fixtures import SERVED, TOKEN, new_registry, register, running
    from tests.serving._fixtures import settings as service_settings

CHECKS = (
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LLMD_MODELS = ("llm-d.ttft", "llm-d.tpot")
Operation = APIOperation[Any, Any, Any, Any]
_MODEL_KEYS = frozenset({"served_model", "model"})
#: The served model of the tiny workflow bundle.
WORKFLOW_SERVED = "m"


@dataclass(frozen=True)
class Budget:
    """Examples per operation: positive, negative, and positive with ``served_model`` pinned.

    Pinned runs (a ``served_model`` parameter, or ``served_model`` keys in the body) name
    a loaded champion, so the handlers past the unknown-model check are reached too.
    """

    positive: int
    negative: int
    pinned: int


@dataclass(frozen=True)
class Failure:
    """One answer that failed a check (or a request that could not be made)."""

    operation: str
    mode: str
    status: int | None
    titles: str
    raised_at: str
    detail: str


@dataclass
class FuzzResult:
    """Requests per operation and per (operation, status), failures, timing (seconds)."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    no_negative: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        """Requests made."""
        return sum(self.requests.values())

    def server_errors(self) -> int:
        """Answers 5xx."""
        return sum(n for (_, status), n in self.statuses.items() if status >= 500)


class _Tracebacks(logging.Handler):
    """Keeps the innermost frame of each exception uvicorn logs (the app's 500s)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            self.lines.append(f"{frame.filename}:{frame.lineno} {type(exc).__name__}: {exc}")

    def take(self) -> str:
        lines, self.lines = self.lines, []
        return " | ".join(lines)


def _arrow_bodies() -> st.SearchStrategy[bytes]:
    """Arrow IPC streams (small key/vector tables) and arbitrary bytes."""
    keys = st.lists(st.text(max_size=8), max_size=4)
    vectors = st.lists(st.floats(width=32, allow_nan=False), min_size=2, max_size=2)

    def table(k: list[str], v: list[float]) -> bytes:
        vec = pa.array([v] * len(k), pa.list_(pa.float32()))
        return table_bytes(pa.table({"key": pa.array(k, pa.string()), "vector": vec}))

    return st.one_of(st.binary(max_size=64), st.builds(table, keys, vectors))


def build_app(root: Path) -> Any:
    """The service under test: tiny champions, a workflow bundle, the token set."""
    registry = new_registry(root / "registry")
    for served, seed in ((SERVED, 0), (LLMD_MODELS[0], 3), (LLMD_MODELS[1], 4)):
        register(registry, served, seed=seed)
    home = root / "home"
    tiny_model(dim=384).save(home / "workflows" / "v0001")
    cfg = service_settings(home, registry, token=TOKEN)
    return create_app(cfg, registry=registry, poll_interval_s=3600.0)


@contextmanager
def served(root: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Serve :func:`build_app` on loopback; yields its base URL and OpenAPI document."""
    schemathesis.openapi.media_type(ARROW_STREAM, _arrow_bodies())
    app = build_app(root)
    with running(app) as url:
        yield url, app.openapi()


def fuzz(
    base_url: str,
    document: dict[str, Any],
    budget: Budget,
    progress: Callable[[str, int], None] | None = None,
) -> FuzzResult:
    """Fuzz every operation of ``document`` at ``base_url`` within ``budget``.

    Raises:
        AssertionError: When an operation of the document cannot be loaded (e.g. a
            reference that does not resolve).
    """
    schema = schemathesis.openapi.from_dict(document, config=schemathesis.Config())
    schema.config.update(base_url=base_url)
    result = FuzzResult()
    logs = _Tracebacks()
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(logs)
    start = time.monotonic()
    try:
        with requests.Session() as session:
            for loaded in schema.get_all_operations():
                if isinstance(loaded, Err):
                    raise AssertionError(f"an operation does not load: {loaded.err()}")
                operation = loaded.ok()
                for mode, strategy, n in _passes(operation, budget):
                    _run(operation, mode, strategy, n, session, logs, result)
                if progress is not None:
                    progress(operation.label, result.requests[operation.label])
    finally:
        uvicorn_log.removeHandler(logs)
    result.seconds = time.monotonic() - start
    return result


def _passes(operation: Operation, budget: Budget) -> Iterator[tuple[str, Any, int]]:
    yield "positive", operation.as_strategy(GenerationMode.POSITIVE), budget.positive
    if _has_inputs(operation):
        yield "negative", operation.as_strategy(GenerationMode.NEGATIVE), budget.negative
    pin = {"served_model": SERVED}
    if any(p.name == "served_model" for p in operation.path_parameters):
        yield "pinned", operation.as_strategy(path_parameters=pin), budget.pinned
    elif any(p.name == "served_model" for p in operation.query):
        yield "pinned", operation.as_strategy(query=pin), budget.pinned
    elif list(operation.body):
        model = WORKFLOW_SERVED if operation.path == "/v1/forecasts/workflow" else SERVED
        pinned = operation.as_strategy().map(lambda case: _pin_body(case, model))
        yield "pinned", pinned, budget.pinned


def _pin_body(case: Case[Operation], model: str) -> Case[Operation]:
    """``case`` with every ``served_model`` (and AIBrix ``model``) of its body ``model``."""
    if isinstance(case.body, dict | list):
        case.body = _pinned(case.body, model)
    return case


def _pinned(value: Any, model: str) -> Any:
    if isinstance(value, dict):
        return {k: model if k in _MODEL_KEYS else _pinned(v, model) for k, v in value.items()}
    if isinstance(value, list):
        return [_pinned(v, model) for v in value]
    return value


def _has_inputs(operation: Operation) -> bool:
    params = (operation.path_parameters, operation.query, operation.headers)
    return any(len(list(p)) for p in params) or bool(list(operation.body))


def _run(
    operation: Operation,
    mode: str,
    strategy: Any,
    examples: int,
    session: requests.Session,
    logs: _Tracebacks,
    result: FuzzResult,
) -> None:
    label = operation.label

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def one(case: Case[Operation]) -> None:
        _call(case, label, mode, session, logs, result)

    try:
        one()
    except Unsatisfiable:  # no input violates the schema (e.g. a free string path)
        result.no_negative.append(label)


def _call(
    case: Case[Operation],
    label: str,
    mode: str,
    session: requests.Session,
    logs: _Tracebacks,
    result: FuzzResult,
) -> None:
    try:
        response = case.call(session=session, headers=AUTH, timeout=60)
    except Exception as exc:  # a request that could not be sent or answered
        result.failures.append(Failure(label, mode, None, type(exc).__name__, "", str(exc)[:500]))
        return
    result.requests[label] += 1
    result.statuses[(label, response.status_code)] += 1
    if response.status_code >= 500:
        time.sleep(0.05)  # uvicorn logs the traceback after answering
    raised_at = logs.take()
    try:
        case.validate_response(response, checks=list(CHECKS), headers=AUTH)
    except FailureGroup as group:
        titles = "; ".join(sorted({f.title for f in group.exceptions}))
        detail = f"{case.as_curl_command(headers=AUTH)[:400]} -> {response.text[:300]}"
        result.failures.append(
            Failure(label, mode, response.status_code, titles, raised_at, detail)
        )


def report(result: FuzzResult, limit: int = 40) -> str:
    """The distinct failures, one per (operation, status, titles, raising line)."""
    seen: dict[tuple[str, int | None, str, str], Failure] = {}
    count: Counter[tuple[str, int | None, str, str]] = Counter()
    for f in result.failures:
        key = (f.operation, f.status, f.titles, f.raised_at)
        seen.setdefault(key, f)
        count[key] += 1
    lines = [f"{len(result.failures)} failing answers of {result.total} requests:"]
    for key, f in list(seen.items())[:limit]:
        lines.append(f"- {count[key]}x {f.operation} [{f.mode}] {f.status}: {f.titles}")
        if f.raised_at:
            lines.append(f"    raised at {f.raised_at}")
        lines.append(f"    e.g. {f.detail}")
    return "\n".join(lines)
