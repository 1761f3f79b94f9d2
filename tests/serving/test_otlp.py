"""``POST /v1/traces``: vLLM-shaped spans from the real OpenTelemetry SDK and OTLP exporter.

A real service on loopback (uvicorn) receives spans from a real ``TracerProvider`` whose
``BatchSpanProcessor`` exports with the real ``OTLPSpanExporter`` (protobuf, gzip); the
same spans are also sent by hand (the SDK's own protobuf encoder, and OTLP/JSON) to read
the ``ExportTraceServiceResponse``.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from feature_store import open_store
from registry import MLflowRegistry
from serving import ServingConfig, create_app
from serving.otlp import OtlpMapping

if TYPE_CHECKING:  # mypy maps tests/serving/*.py to top-level modules (no __init__.py)
    from _fixtures import DEVICE, SERVED, TOKEN, new_registry, register, running, settings
else:
    from tests.serving._fixtures import (
        DEVICE,
        SERVED,
        TOKEN,
        new_registry,
        register,
        running,
        settings,
    )

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROTOBUF = {**AUTH, "Content-Type": "application/x-protobuf"}
#: 2026-01-01T12:00:00Z in nanoseconds since the epoch.
T0_NS = 1_767_268_800 * 10**9
#: What an operator sets on the vLLM process (OTEL_RESOURCE_ATTRIBUTES).
RESOURCE = {"service.name": "vllm", "tailcast.served_model": SERVED, "tailcast.device": DEVICE}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> MLflowRegistry:
    reg = new_registry(tmp_path_factory.mktemp("registry"))
    register(reg, SERVED)
    return reg


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exporter reads OTEL_* variables (headers, endpoint): never the caller's."""
    import os

    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def service(registry: MLflowRegistry, tmp_path: Path) -> Iterator[str]:
    app = create_app(settings(tmp_path, registry, token=TOKEN), registry=registry)
    with running(app) as url:
        yield url


def provider_with(*exporters: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    """A real TracerProvider exporting through ``exporters``; also keeps every span."""
    provider = TracerProvider(resource=Resource.create(RESOURCE))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def vllm_span(provider: TracerProvider, i: int, **overrides: Any) -> None:
    """One span as vLLM's output processor records a finished request (``llm_request``)."""
    arrival = T0_NS + i * 10**9
    attributes: dict[str, Any] = {
        "gen_ai.request.id": f"cmpl-{i}",
        "gen_ai.usage.prompt_tokens": 100 + i,
        "gen_ai.usage.completion_tokens": 20 + i,
        "gen_ai.request.temperature": 0.7,
        "gen_ai.request.top_p": 0.95,
        "gen_ai.request.max_tokens": 512,
        "gen_ai.request.n": 1,
        "gen_ai.latency.time_in_queue": 0.01,
        "gen_ai.latency.time_to_first_token": 0.1 + i / 1000,
        "gen_ai.latency.e2e": 1.0 + i / 100,
    }
    attributes.update(overrides)
    for key in [k for k, v in attributes.items() if v is None]:
        del attributes[key]
    span = provider.get_tracer("vllm.tracing").start_span(
        "llm_request", kind=SpanKind.SERVER, start_time=arrival, attributes=attributes
    )
    span.end(end_time=arrival + int(abs(attributes.get("gen_ai.latency.e2e", 1.0)) * 1e9))


def other_span(provider: TracerProvider, i: int) -> None:
    """A span of the HTTP server around it: no GenAI request span."""
    with provider.get_tracer("uvicorn").start_as_current_span(
        "GET /health", attributes={"http.request.method": "GET", "http.response.status_code": 200}
    ):
        pass


def metric(url: str, name: str) -> float:
    """One sample of the service's ``/metrics`` (0 when absent)."""
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def wait_for(check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return result


def span_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"


def stored(home: Path) -> dict[str, dict[str, Any]]:
    """Every stored completion of SERVED by request id (the service has stopped)."""
    with open_store(home / "store.duckdb", read_only=True) as store:
        rows = store.training_frame(SERVED).to_pylist()
    return {r["request_id"]: r for r in rows}


def test_vllm_spans_through_the_real_exporter_become_completions_once(
    registry: MLflowRegistry, tmp_path: Path
) -> None:
    n = 200
    app = create_app(settings(tmp_path, registry, token=TOKEN), registry=registry)
    with running(app) as url:
        exporter = OTLPSpanExporter(
            endpoint=f"{url}/v1/traces", headers=AUTH, compression=Compression.Gzip, timeout=30
        )
        provider, memory = provider_with(exporter)
        for i in range(n):
            vllm_span(provider, i)
            if i % 20 == 0:
                other_span(provider, i)
        assert provider.force_flush(30_000)
        spans = memory.get_finished_spans()
        assert len(spans) == n + n // 20
        spans_total = 'tailcast_otlp_spans_total{outcome="%s"}'
        assert metric(url, spans_total % "accepted") == n
        assert metric(url, spans_total % "ignored") == n // 20
        # Resent (an exporter retry, a Collector replay): stores nothing new.
        assert exporter.export(spans).name == "SUCCESS"
        assert metric(url, spans_total % "accepted") == n
        assert metric(url, spans_total % "duplicate") == n
        assert metric(url, "tailcast_completions_accepted_total") == n
        # The drift judge was fed: it judges every stored span of the champion's model.
        with httpx.Client(base_url=url, timeout=30) as client:
            # judged (counted), then acknowledged (out of the inbox) by the same pass
            view = wait_for(
                lambda: (
                    (v := client.get("/v1/drift").json())["observed"] == n and v["inbox"] == 0 and v
                )
            )
        assert (view["observed"], view["inbox"]) == (n, 0)
        provider.shutdown()
    records = stored(tmp_path)
    assert sorted(records) == sorted(f"cmpl-{i}" for i in range(n))
    r = records["cmpl-7"]
    assert (r["served_model"], r["device"]) == (SERVED, DEVICE)
    assert (r["input_tokens"], r["output_tokens"]) == (107, 27)
    assert r["latency_s"] == pytest.approx(1.07, abs=1e-9)
    assert r["ttft_s"] == pytest.approx(0.107, abs=1e-9)
    assert r["submitted_at"].timestamp() == pytest.approx((T0_NS + 7 * 10**9) / 1e9, abs=1e-6)


def send(
    url: str, spans: Sequence[ReadableSpan], *, deflate: bool = False
) -> ExportTraceServiceResponse:
    """Export ``spans`` with the SDK's protobuf encoder; the decoded response."""
    body = encode_spans(spans).SerializeToString()
    headers = {**PROTOBUF, "Content-Encoding": "deflate"} if deflate else PROTOBUF
    res = httpx.post(
        f"{url}/v1/traces",
        content=zlib.compress(body) if deflate else body,
        headers=headers,
        timeout=30,
    )
    assert res.status_code == 200, res.text
    assert res.headers["content-type"] == "application/x-protobuf"
    answer: ExportTraceServiceResponse = ExportTraceServiceResponse.FromString(res.content)
    return answer


def test_a_malformed_span_is_rejected_with_its_reason_and_the_rest_kept(service: str) -> None:
    provider, memory = provider_with()
    for i in range(5):
        vllm_span(provider, i)
    vllm_span(provider, 5, **{"gen_ai.latency.e2e": -1.0})
    vllm_span(provider, 6, **{"gen_ai.request.id": None})
    vllm_span(provider, 7, **{"gen_ai.latency.time_to_first_token": 9.0})
    spans = memory.get_finished_spans()
    bad = {span_id(s) for s in spans[5:]}

    answer = send(service, spans)
    assert answer.partial_success.rejected_spans == 3
    message = answer.partial_success.error_message
    assert all(b in message for b in bad), message
    assert "latency_s (from gen_ai.latency.e2e): " in message
    assert "request_id (from gen_ai.request.id or gen_ai.response.id)" in message
    assert "ttft_s (from gen_ai.latency.time_to_first_token): must be <= latency_s" in message
    assert metric(service, 'tailcast_otlp_spans_total{outcome="accepted"}') == 5
    # The rejected spans stay rejected; the stored ones count as duplicates.
    again = send(service, spans, deflate=True)
    assert again.partial_success.rejected_spans == 3
    assert metric(service, 'tailcast_otlp_spans_total{outcome="duplicate"}') == 5


def otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """``spans`` in OTLP/JSON: protobuf JSON with hex trace and span ids."""
    document: dict[str, Any] = MessageToDict(encode_spans(spans))
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return document


def test_otlp_json_gzip_is_stored_and_a_malformed_span_rejected_alone(service: str) -> None:
    provider, memory = provider_with()
    for i in range(10):
        vllm_span(provider, i)
    spans = memory.get_finished_spans()
    document = otlp_json(spans)
    first = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    first["startTimeUnixNano"] = "soon"
    headers = {**AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    body = gzip.compress(json.dumps(document).encode())
    for _ in range(2):  # the second time: nothing new
        res = httpx.post(f"{service}/v1/traces", content=body, headers=headers, timeout=30)
        assert res.status_code == 200, res.text
        assert res.headers["content-type"] == "application/json"
        partial = res.json()["partialSuccess"]
        assert partial["rejectedSpans"] == "1"
        assert span_id(spans[0]) in partial["errorMessage"]
        assert "startTimeUnixNano: not an integer" in partial["errorMessage"]
        assert metric(service, 'tailcast_otlp_spans_total{outcome="accepted"}') == 9
    ok = httpx.post(
        f"{service}/v1/traces",
        content=json.dumps(otlp_json(spans[1:])),
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=30,
    )
    assert ok.json() == {}  # fully accepted (as duplicates): no partial_success


def test_semantic_convention_spans_under_a_configured_mapping(
    registry: MLflowRegistry, tmp_path: Path
) -> None:
    """A gateway's spans (GenAI semantic conventions): operation filter, default device."""
    mapping = OtlpMapping(default_device="gateway", span_names=("chat m", "embeddings m"))
    config = ServingConfig(otlp=mapping)
    app = create_app(settings(tmp_path, registry, token=TOKEN), registry=registry, config=config)
    provider = TracerProvider(resource=Resource.create({"service.name": "gateway"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("litellm")
    for i, operation in enumerate(("chat", "chat", "embeddings")):
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": SERVED,
            "gen_ai.response.id": f"chatcmpl-{i}",
            "gen_ai.usage.input_tokens": 50,
            "gen_ai.usage.cache_read.input_tokens": 20,
            "gen_ai.usage.output_tokens": 10,
        }
        span = tracer.start_span(f"{operation} m", start_time=T0_NS, attributes=attributes)
        span.end(end_time=T0_NS + 3 * 10**9)
    with tracer.start_as_current_span("chat other", attributes={"gen_ai.response.id": "x"}):
        pass  # a name outside span_names
    with running(app) as url:
        answer = send(url, memory.get_finished_spans())
        assert answer.partial_success.rejected_spans == 0
        assert metric(url, 'tailcast_otlp_spans_total{outcome="accepted"}') == 2
        assert metric(url, 'tailcast_otlp_spans_total{outcome="ignored"}') == 2
    records = stored(tmp_path)
    assert sorted(records) == ["chatcmpl-0", "chatcmpl-1"]
    r = records["chatcmpl-1"]
    assert (r["device"], r["input_tokens"], r["cached_tokens"], r["output_tokens"]) == (
        "gateway",
        50,
        20,
        10,
    )
    assert r["latency_s"] == pytest.approx(3.0)  # the span's duration
    assert r["ttft_s"] is None


UNDECODABLE: list[tuple[str, dict[str, str], bytes, int]] = [
    ("protobuf", PROTOBUF, b"not protobuf", 400),
    ("json", {**AUTH, "Content-Type": "application/json"}, b"{not json", 400),
    ("json-shape", {**AUTH, "Content-Type": "application/json"}, b'{"resourceSpans": 3}', 400),
    ("gzip", {**PROTOBUF, "Content-Encoding": "gzip"}, gzip.compress(b"x" * 100)[:20], 400),
    ("br", {**PROTOBUF, "Content-Encoding": "br"}, b"", 415),
    ("text", {**AUTH, "Content-Type": "text/plain"}, b"", 415),
    ("no-token", {"Content-Type": "application/x-protobuf"}, b"", 401),
]


def test_an_undecodable_body_is_refused_whole_with_a_status(service: str) -> None:
    for case, headers, body, status in UNDECODABLE:
        res = httpx.post(f"{service}/v1/traces", content=body, headers=headers, timeout=30)
        assert res.status_code == status, (case, res.text)
        if status == 401:
            continue
        if res.headers["content-type"] == "application/json":
            assert res.json()["code"] == 3, case
            assert res.json()["message"], case
        else:  # google.rpc.Status in protobuf: field 1 the code, field 2 the message
            assert res.content[:2] == b"\x08\x03", case
            assert len(res.content) > 4, case
    assert metric(service, "tailcast_completions_accepted_total") == 0
