"""OTLP/HTTP trace bodies -> :class:`SpanView` objects (protobuf or JSON, gzip or deflate).

Only the attributes a mapping reads are kept (``wanted``); every span of the request
becomes one view, in body order. ``opentelemetry-proto`` is imported on the first
protobuf body, never at startup. A protobuf body either decodes or is refused whole
(the wire format has no span boundaries to recover at); in a JSON body a span that is
not an object or carries a malformed value (a time that is not an integer, an
``intValue`` that is not one) is kept as a view with its ``problem``, so it is rejected
alone.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Bytes of decompressed body read per step while checking the size limit.
_CHUNK = 1 << 20


class OtlpBodyError(ValueError):
    """The body cannot be decoded (answered 400)."""


class OtlpTooLargeError(ValueError):
    """The decompressed body exceeds the size limit (answered 413)."""


@dataclass(slots=True)
class SpanView:
    """The parts of one span the records are built from.

    Attributes:
        name: The span name (vLLM: ``llm_request``).
        span_id: The span id, lowercase hex (empty when the span has none).
        start_ns: Start time, nanoseconds since the Unix epoch (0: unset).
        end_ns: End time, nanoseconds since the Unix epoch (0: unset).
        attributes: The span's attributes the mapping reads.
        resource: Its resource's attributes the mapping reads (shared by its spans).
        problem: Why the span is malformed, or ``None``.
    """

    name: str
    span_id: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: Mapping[str, Any] = field(default_factory=dict)
    problem: str | None = None


def inflate(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` decompressed per its ``Content-Encoding`` (gzip, deflate or none).

    Raises:
        OtlpBodyError: Not valid gzip/deflate data.
        OtlpTooLargeError: More than ``limit`` bytes once decompressed.
        ValueError: Another content coding (answered 415).
    """
    coding = (encoding or "identity").strip().lower()
    if coding == "identity":
        return body
    if coding not in ("gzip", "deflate"):
        raise ValueError(f"unsupported Content-Encoding {coding!r} (gzip, deflate or none)")
    # wbits: 16 + MAX_WBITS reads a gzip header; MAX_WBITS a zlib one (HTTP's "deflate")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS)
    out = bytearray()
    try:
        data = inflater.decompress(body, _CHUNK)
        while True:
            out += data
            if len(out) > limit:
                raise OtlpTooLargeError(f"the body is over {limit} bytes once decompressed")
            if not inflater.unconsumed_tail:
                break
            data = inflater.decompress(inflater.unconsumed_tail, _CHUNK)
    except zlib.error as exc:
        raise OtlpBodyError(f"not valid {coding} data: {exc}") from None
    if not inflater.eof:
        raise OtlpBodyError(f"truncated {coding} data")
    return bytes(out)


def decode_protobuf(body: bytes, wanted: frozenset[str]) -> list[SpanView]:
    """The spans of a protobuf ``ExportTraceServiceRequest``.

    Raises:
        OtlpBodyError: The body is not such a message.
    """
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise OtlpBodyError(f"not an OTLP ExportTraceServiceRequest: {exc}") from None
    views: list[SpanView] = []
    for resource_spans in request.resource_spans:
        resource = _proto_attributes(resource_spans.resource.attributes, wanted)
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                attributes = _proto_attributes(s.attributes, wanted)
                view = SpanView(
                    s.name, s.span_id.hex(), s.start_time_unix_nano, s.end_time_unix_nano,
                    attributes, resource,
                )  # fmt: skip
                views.append(view)
    return views


#: ``AnyValue`` kinds read with one attribute access (arrays and key-value lists recurse).
_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value", "bytes_value"})


def _proto_attributes(pairs: Iterable[Any], wanted: frozenset[str]) -> dict[str, Any]:
    """The ``wanted`` attributes of ``pairs`` (the loop is the decode's hot spot)."""
    out: dict[str, Any] = {}
    for kv in pairs:
        key = kv.key
        if key in wanted:
            value = kv.value
            kind = value.WhichOneof("value")
            out[key] = getattr(value, kind) if kind in _SCALARS else _proto_value(value)
    return out


def _proto_value(value: Any) -> Any:
    """An ``AnyValue`` as Python (arrays as lists, key-value lists as dicts)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_proto_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _proto_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def decode_json(body: bytes, wanted: frozenset[str]) -> list[SpanView]:
    """The spans of an OTLP/JSON ``ExportTraceServiceRequest`` (lowerCamelCase keys).

    Raises:
        OtlpBodyError: Not JSON, or not the request's structure down to its span lists.
    """
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise OtlpBodyError(f"not JSON: {exc}") from None
    views: list[SpanView] = []
    for resource_spans in _objects(document, "resourceSpans", "the body"):
        resource_doc = _get(resource_spans, "resource") or {}
        if not isinstance(resource_doc, dict):
            raise OtlpBodyError("a resource is not an object")
        try:
            resource = _json_attributes(_get(resource_doc, "attributes"), wanted)
        except _SpanProblemError as exc:
            raise OtlpBodyError(f"resource attributes: {exc}") from None
        for scope_spans in _objects(resource_spans, "scopeSpans", "resourceSpans item"):
            spans = _get(scope_spans, "spans") or []
            if not isinstance(spans, list):
                raise OtlpBodyError("scopeSpans item: spans is not a list")
            views.extend(_json_span(s, resource, wanted) for s in spans)
    return views


class _SpanProblemError(ValueError):
    """A malformed value inside one span."""


def _objects(parent: Any, key: str, what: str) -> list[dict[str, Any]]:
    if not isinstance(parent, dict):
        raise OtlpBodyError(f"{what} is not an object")
    items = _get(parent, key) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise OtlpBodyError(f"{what}: {key} is not a list of objects")
    return items


def _get(obj: Mapping[str, Any], camel: str) -> Any:
    """``obj[camel]``, or its snake_case spelling (both are valid protobuf JSON)."""
    if camel in obj:
        return obj[camel]
    return obj.get("".join(f"_{c.lower()}" if c.isupper() else c for c in camel))


def _json_span(span: Any, resource: Mapping[str, Any], wanted: frozenset[str]) -> SpanView:
    if not isinstance(span, dict):
        return SpanView("", "", 0, 0, {}, resource, f"not an object: {type(span).__name__}")
    name, span_id = _get(span, "name"), _get(span, "spanId")
    view = SpanView(
        name if isinstance(name, str) else "",
        span_id if isinstance(span_id, str) else "",
        0, 0, {}, resource,
    )  # fmt: skip
    try:
        view.start_ns = _json_int(_get(span, "startTimeUnixNano") or 0, "startTimeUnixNano")
        view.end_ns = _json_int(_get(span, "endTimeUnixNano") or 0, "endTimeUnixNano")
        view.attributes = _json_attributes(_get(span, "attributes"), wanted)
    except _SpanProblemError as exc:
        view.problem = str(exc)
    return view


def _json_attributes(pairs: Any, wanted: frozenset[str]) -> dict[str, Any]:
    if pairs is None:
        return {}
    if not isinstance(pairs, list):
        raise _SpanProblemError("attributes is not a list")
    out: dict[str, Any] = {}
    for kv in pairs:
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise _SpanProblemError("an attribute is not a {key, value} object")
        if kv["key"] in wanted:
            out[kv["key"]] = _json_value(kv.get("value"), kv["key"])
    return out


def _json_value(value: Any, key: str) -> Any:
    """An OTLP/JSON ``AnyValue`` as Python."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict) or len(value) != 1:
        raise _SpanProblemError(f"attribute {key}: not an AnyValue object")
    ((kind, inner),) = value.items()
    if kind in ("intValue", "int_value"):
        return _json_int(inner, f"attribute {key}")
    if kind in ("arrayValue", "array_value", "kvlistValue", "kvlist_value"):
        items = inner.get("values", []) if isinstance(inner, dict) else None
        if not isinstance(items, list):
            raise _SpanProblemError(f"attribute {key}: values is not a list")
        if kind.startswith("array"):
            return [_json_value(v, key) for v in items]
        return {str(kv.get("key")): _json_value(kv.get("value"), key) for kv in _dicts(items, key)}
    if kind in ("stringValue", "string_value", "boolValue", "bool_value", "bytesValue"):
        return inner
    if kind in ("doubleValue", "double_value"):
        return inner if isinstance(inner, int | float) else _json_float(inner, key)
    raise _SpanProblemError(f"attribute {key}: unknown AnyValue kind {kind!r}")


def _dicts(items: Sequence[Any], key: str) -> list[dict[str, Any]]:
    if not all(isinstance(i, dict) for i in items):
        raise _SpanProblemError(f"attribute {key}: a key-value list item is not an object")
    return list(items)


def _json_int(value: Any, what: str) -> int:
    """An int64 of OTLP/JSON: a number or a decimal string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and len(value) < 30:
        try:
            return int(value)
        except ValueError:
            pass
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _SpanProblemError(f"{what}: not an integer: {str(value)[:40]!r}")


def _json_float(value: Any, key: str) -> float:
    """A double of protobuf JSON given as text ("NaN", "Infinity", "1.5")."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _SpanProblemError(f"attribute {key}: not a number: {str(value)[:40]!r}") from None
