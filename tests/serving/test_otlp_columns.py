"""Span rows stored as typed columns give the outcomes of the same rows as mappings.

``POST /v1/traces`` hands the store one tuple per span (``SpanBatch.values``), stored
as typed columns (``RecordStore.ingest_columns``); ``SpanBatch.rows`` are the same rows
as the mappings ``POST /v1/completions`` stores value by value (``ingest_rows``). Both
must store the same records and reject the same spans with the same reasons.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core import IngestReport
from feature_store import DuckDBStore
from serving._ingest import completion_writer
from serving.otlp import COLUMNS, OtlpMapping, SpanBatch, SpanView, span_rows
from serving.otlp._decode import decode_json, decode_protobuf
from serving.routes.traces import SOURCE, TYPED

T0_NS = 1_767_268_800 * 10**9
RESOURCE = {"service.name": "vllm", "tailcast.served_model": "m", "tailcast.device": "h100"}
NEG_NAN = math.copysign(math.nan, -1.0)


def sdk_body(overrides: Sequence[dict[str, Any]]) -> bytes:
    """A protobuf export of one vLLM-shaped span per item of ``overrides`` (real SDK)."""
    provider = TracerProvider(resource=Resource.create(RESOURCE))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("vllm.tracing")
    for i, override in enumerate(overrides):
        attributes: dict[str, Any] = {
            "gen_ai.request.id": f"cmpl-{i}",
            "gen_ai.usage.prompt_tokens": 100 + i,
            "gen_ai.usage.completion_tokens": 20 + i,
            "gen_ai.latency.time_to_first_token": 0.1,
            "gen_ai.latency.e2e": 1.0 + i / 100,
            **override,
        }
        attributes = {k: v for k, v in attributes.items() if v is not None}
        span = tracer.start_span("llm_request", start_time=T0_NS + i, attributes=attributes)
        span.end(end_time=T0_NS + i + 2 * 10**9)
    body: bytes = encode_spans(memory.get_finished_spans()).SerializeToString()
    provider.shutdown()
    return body


#: Valid spans mixed with malformed ones (one override per span).
MIXED: list[dict[str, Any]] = [
    {},
    {"gen_ai.latency.e2e": -1.0},
    {"gen_ai.latency.e2e": math.nan},
    {"gen_ai.latency.e2e": NEG_NAN},
    {"gen_ai.latency.e2e": math.inf},
    {"gen_ai.request.id": None},
    {"gen_ai.latency.time_to_first_token": 9.0},
    {"gen_ai.usage.prompt_tokens": True},
    {"gen_ai.usage.prompt_tokens": [1, 2]},
    {"gen_ai.usage.completion_tokens": 2.5},
    {"gen_ai.request.id": "x" * 300},
    {"gen_ai.request.id": "cmpl-0"},  # a duplicate within the batch
    {"gen_ai.latency.e2e": None},  # the span's duration
    {"tailcast.device": "node-7", "tailcast.served_model": "other"},  # span over resource
    {"gen_ai.usage.prompt_tokens": -(2**63)},
    {"tailcast.step": 3, "tailcast.kv_cache_util": 1.5},
]


def outcomes(batch: SpanBatch) -> tuple[IngestReport, IngestReport, list[Any], list[Any]]:
    """(typed report, mapping report, typed stored rows, mapping stored rows)."""
    with DuckDBStore(":memory:") as typed, DuckDBStore(":memory:") as generic:
        fast = typed.ingest_columns(batch.columns(), SOURCE)
        slow = generic.ingest_rows(batch.rows, SOURCE)
        frames = [s.training_frame(require=()).to_pylist() for s in (typed, generic)]
    return fast, slow, *frames


def test_a_mixed_protobuf_export_is_stored_and_rejected_alike() -> None:
    batch = span_rows(decode_protobuf(sdk_body(MIXED), OtlpMapping().wanted()), OtlpMapping())
    assert batch.typed
    assert len(batch.values) == len(MIXED)
    fast, slow, fast_rows, slow_rows = outcomes(batch)
    assert fast == slow
    assert fast_rows == slow_rows
    said = [batch.describe(r) for r in fast.rejected]
    assert said == [batch.describe(r) for r in slow.rejected]
    assert any("latency_s (from gen_ai.latency.e2e): not a finite number: nan" in s for s in said)
    assert any("input_tokens (from gen_ai.usage.prompt_tokens): out of range" in s for s in said)
    assert fast.accepted == 3
    assert fast.duplicate_indices == (11,)
    node = next(r for r in fast_rows if r["device"] == "node-7")
    assert node["served_model"] == "other"


def test_a_json_export_with_unstorable_values_is_stored_and_rejected_alike() -> None:
    def span(i: int, key: str, value: dict[str, Any]) -> dict[str, Any]:
        attributes = [
            {"key": "gen_ai.request.id", "value": {"stringValue": f"j-{i}"}},
            {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": "12"}},
            {"key": key, "value": value},
        ]
        return {"name": "llm_request", "spanId": f"{i:016x}", "attributes": attributes,
                "startTimeUnixNano": str(T0_NS), "endTimeUnixNano": str(T0_NS + 10**9)}  # fmt: skip

    spans = [
        span(0, "gen_ai.latency.e2e", {"doubleValue": 2.0}),
        span(1, "gen_ai.request.id", {"stringValue": "a\ud800"}),
        span(2, "gen_ai.usage.completion_tokens", {"intValue": "9" * 25}),
        span(3, "gen_ai.latency.e2e", {"doubleValue": "-Infinity"}),
        span(4, "gen_ai.latency.e2e", {"intValue": "3"}),  # an int where a float goes
        span(5, "tailcast.device", {"boolValue": True}),
        span(6, "gen_ai.latency.e2e", {}),
    ]
    resource = {"attributes": [{"key": "tailcast.served_model", "value": {"stringValue": "m"}}]}
    document = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}
    body = json.dumps(document).encode()
    mapping = OtlpMapping(default_device="gw")
    batch = span_rows(decode_json(body, mapping.wanted()), mapping)
    fast, slow, fast_rows, slow_rows = outcomes(batch)
    assert fast == slow
    assert fast_rows == slow_rows
    reasons = {r.index: (r.field, r.reason) for r in fast.rejected}
    assert reasons[1] == ("request_id", "not valid Unicode: lone surrogate U+D800 at character 1")
    assert reasons[2][0] == "output_tokens"
    assert reasons[2][1].startswith("out of range")
    assert fast.accepted == 3  # spans 0, 4 and 6 (the empty value: no latency)


def test_a_default_device_that_is_no_valid_text_takes_the_mapping_path() -> None:
    assert span_rows([], OtlpMapping(default_device="gw")).typed
    assert not span_rows([], OtlpMapping(default_device="g\udc80")).typed


def test_the_writer_stores_span_tuples_as_the_mappings_would_be() -> None:
    batch = span_rows(decode_protobuf(sdk_body(MIXED), OtlpMapping().wanted()), OtlpMapping())

    async def submit(store: DuckDBStore, typed: bool) -> list[Any]:
        writer = completion_writer(store, 4096)
        if typed:
            return await writer.submit(TYPED, batch.values, TYPED)
        return await writer.submit(SOURCE, batch.rows, SOURCE)

    with DuckDBStore(":memory:") as a, DuckDBStore(":memory:") as b:
        assert asyncio.run(submit(a, True)) == asyncio.run(submit(b, False))
        assert a.training_frame(require=()) == b.training_frame(require=())


_VALUE = st.one_of(
    st.none(), st.integers(-5, 5), st.floats(-2, 2), st.text(max_size=2), st.booleans()
)
_KEYS = sorted({k for f in COLUMNS for k in OtlpMapping().keys_of(f)} | {"other"})
_ATTRIBUTES = st.dictionaries(st.sampled_from(_KEYS), _VALUE, max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(_ATTRIBUTES, st.integers(0, 3), st.integers(0, 3)), max_size=5),
    _ATTRIBUTES,
    st.sampled_from([None, "gw"]),
)
def test_span_tuples_hold_the_values_of_the_span_mappings(
    spans: list[tuple[dict[str, Any], int, int]], resource: dict[str, Any], device: str | None
) -> None:
    """Priority of keys, span before resource, default device, duration and start time."""
    mapping = OtlpMapping(default_device=device)
    views = [
        SpanView("s", "", start, end, {"gen_ai.request.id": "r", **attributes}, resource)
        for attributes, start, end in spans
    ]
    batch = span_rows(views, mapping)
    assert batch.values == [tuple(row.get(c) for c in COLUMNS) for row in batch.rows]
    assert batch.columns() == {c: tuple(v[i] for v in batch.values) for i, c in enumerate(COLUMNS)}
