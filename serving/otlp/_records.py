"""GenAI request spans -> the completion rows ``POST /v1/completions`` stores.

Each GenAI request span becomes one row of untrusted values (the store validates
them exactly as it validates a completions body); other spans are counted and left
out. ``submitted_at`` is the span's start time (vLLM starts its span at the request's
arrival); ``latency_s`` falls back to the span's duration. Every row keeps where its
values came from, so a rejection names the span and the attribute at fault.

A row is kept as one tuple of values in :data:`COLUMNS` order, the values as decoded
(ints, floats, strings, a UTC datetime), so the store builds its typed columns in one
conversion each (:meth:`feature_store.RecordStore.ingest_columns`);
:attr:`SpanBatch.rows` gives the same rows as mappings, the form
:meth:`~feature_store.RecordStore.ingest_rows` validates value by value.

Example:
    >>> from serving.otlp._decode import SpanView
    >>> from serving.otlp._mapping import OtlpMapping
    >>> span = SpanView("llm_request", "00f067aa0ba902b7", 10**18, 10**18 + 2 * 10**9,
    ...     {"gen_ai.request.id": "r-1", "gen_ai.usage.prompt_tokens": 12},
    ...     {"tailcast.served_model": "m", "tailcast.device": "h100"})
    >>> batch = span_rows([span], OtlpMapping())
    >>> batch.rows[0]["latency_s"], batch.rows[0]["input_tokens"], batch.ignored
    (2.0, 12, 0)
    >>> batch.columns()["latency_s"], batch.columns()["device"]
    ((2.0,), ('h100',))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core import Rejection, text_problem
from serving.otlp._decode import SpanView, decode_json, decode_protobuf, inflate
from serving.otlp._mapping import MAPPED_FIELDS, OPERATION, OtlpMapping

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Most rejected spans named in one answer's error message (the rest are counted).
MAX_NAMED = 20
#: The record fields of a row tuple, in order: the mapped fields, then ``submitted_at``.
#: A row mapping's keys come in this order too (bar a default device, a duration and the
#: start time, which are never unusable values), so a row naming several unusable
#: values names the same first one in both forms.
COLUMNS = (*MAPPED_FIELDS, "submitted_at")
_DEVICE, _LATENCY = MAPPED_FIELDS.index("device"), MAPPED_FIELDS.index("latency_s")
#: An attribute no key of a field is set to (a key set to an empty value gives ``None``).
_ABSENT: Any = object()


@dataclass(slots=True)
class SpanBatch:
    """The rows of one request's GenAI spans, and what happened to the other spans.

    Attributes:
        mapping: The mapping the rows were built with.
        values: One row per GenAI request span, in body order: a tuple of raw values in
            :data:`COLUMNS` order (``None``: absent).
        origins: The span of each row.
        rejected: Descriptions of spans rejected before the store saw them.
        ignored: Spans that are no GenAI request spans.
    """

    mapping: OtlpMapping
    values: list[tuple[Any, ...]] = field(default_factory=list)
    origins: list[SpanView] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    ignored: int = 0

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows as raw completion mappings (what ``POST /v1/completions`` stores)."""
        plan = _plan(self.mapping)
        return [_row(span, plan, self.mapping) for span in self.origins]

    @property
    def typed(self) -> bool:
        """Whether the row tuples may be stored as columns (same outcomes as :attr:`rows`).

        Not when the mapping's default device is no valid text: that value is the last
        of its row mapping but in the device column of the tuples, so a row with another
        unusable value would name another first problem.
        """
        default = self.mapping.default_device
        return default is None or text_problem(default) is None

    def columns(self) -> dict[str, tuple[Any, ...]]:
        """The rows as columns, by record field in :data:`COLUMNS` order."""
        if not self.values:
            return dict.fromkeys(COLUMNS, ())
        return dict(zip(COLUMNS, zip(*self.values, strict=True), strict=True))

    def describe(self, rejection: Rejection) -> str:
        """A store rejection of row ``rejection.index`` as text naming its span and attribute."""
        span = self.origins[rejection.index]
        sources: dict[str, str] = {}
        _row(span, _plan(self.mapping), self.mapping, sources)
        where = rejection.field or "record"
        source = sources.get(where)
        if source is not None:
            where = f"{where} (from {source})"
        return f"{label_of(span)}: {where}: {rejection.reason}"


#: Per record field: its attribute keys, in priority order.
_Plan = tuple[tuple[str, tuple[str, ...]], ...]
#: Per mapped field, for one resource: the span keys to try in order, and the value
#: if none is set (the resource's value of the last key, else ``None``, or
#: :data:`_ABSENT` for the device and the latency, which have defaults).
_Lookups = tuple[tuple[tuple[str, ...], Any], ...]


def _plan(mapping: OtlpMapping) -> _Plan:
    return tuple((name, mapping.keys_of(name)) for name in MAPPED_FIELDS)


def span_rows(spans: Sequence[SpanView], mapping: OtlpMapping) -> SpanBatch:
    """Sort ``spans`` into rows, rejections (malformed spans) and ignored spans."""
    batch = SpanBatch(mapping)
    markers, plan = mapping.markers(), _plan(mapping)
    lookups: dict[int, _Lookups] = {}  # by id() of a resource (alive for the whole call)
    for span in spans:
        if span.problem is not None:
            batch.rejected.append(f"{label_of(span)}: {span.problem}")
        elif not _is_request(span, markers, mapping):
            batch.ignored += 1
        else:
            found = lookups.get(id(span.resource))
            if found is None:
                found = lookups[id(span.resource)] = _lookups(plan, span.resource)
            batch.values.append(_values(span, found, mapping.default_device))
            batch.origins.append(span)
    return batch


def _lookups(plan: _Plan, resource: Mapping[str, Any]) -> _Lookups:
    """``plan`` resolved against one resource (the same for each of its spans).

    Each key is read from the span, then from the resource, so a field's lookup stops
    at its first key the resource has: that value is the fallback of the span keys.
    """
    out = []
    for index, (_, keys) in enumerate(plan):
        # absent is None, but for the two fields an absent value has a default for
        fallback, tried = _ABSENT if index in (_DEVICE, _LATENCY) else None, keys
        for i, key in enumerate(keys):
            if key in resource:
                fallback, tried = resource[key], keys[: i + 1]
                break
        out.append((tried, fallback))
    return tuple(out)


def _values(span: SpanView, lookups: _Lookups, default_device: str | None) -> tuple[Any, ...]:
    """The row tuple of ``span`` (see :data:`COLUMNS`): the values :func:`_row` maps."""
    attributes = span.attributes
    values = []
    for keys, fallback in lookups:
        for key in keys:
            if key in attributes:
                values.append(attributes[key])
                break
        else:
            values.append(fallback)
    if values[_DEVICE] is _ABSENT:
        values[_DEVICE] = default_device
    start, end = span.start_ns, span.end_ns
    if values[_LATENCY] is _ABSENT:
        values[_LATENCY] = (end - start) / 1e9 if start > 0 and end > 0 else None
    values.append(_time(start) if start > 0 else None)
    return tuple(values)


def _is_request(span: SpanView, markers: frozenset[str], mapping: OtlpMapping) -> bool:
    if mapping.span_names and span.name not in mapping.span_names:
        return False
    if markers.isdisjoint(span.attributes):
        return False
    operation = span.attributes.get(OPERATION)
    return operation is None or operation in mapping.operations


def _row(
    span: SpanView, plan: _Plan, mapping: OtlpMapping, sources: dict[str, str] | None = None
) -> dict[str, Any]:
    """One raw row of ``span``; fills ``sources`` (when given) with where each value came from."""
    row: dict[str, Any] = {}
    attributes, resource = span.attributes, span.resource
    for name, keys in plan:
        for key in keys:
            if key in attributes:
                row[name] = attributes[key]
                break
            if key in resource:
                row[name] = resource[key]
                key = f"resource {key}"
                break
        else:
            key = " or ".join(keys) if keys else "no attribute"
        if sources is not None:
            sources[name] = key
    if "device" not in row and mapping.default_device is not None:
        row["device"] = mapping.default_device
        if sources is not None:
            sources["device"] = "default_device"
    if span.start_ns > 0:
        row["submitted_at"] = _time(span.start_ns)
    if "latency_s" not in row and span.start_ns > 0 and span.end_ns > 0:
        row["latency_s"] = (span.end_ns - span.start_ns) / 1e9
        if sources is not None:
            sources["latency_s"] = "the span's duration"
    if sources is not None:
        sources["submitted_at"] = "the span's start time"
    return row


def _time(ns: int) -> datetime | str:
    """``ns`` since the epoch as a UTC datetime (out of range: text the store refuses)."""
    try:
        return _EPOCH + timedelta(microseconds=ns // 1000)
    except OverflowError:
        return f"{ns} ns since the epoch"


def label_of(span: SpanView) -> str:
    """How a rejection names ``span``: its id and name."""
    name = span.name.encode("utf-8", "backslashreplace").decode()[:80]
    return f"span {span.span_id or '(no id)'} {name!r}"


def error_message(rejected: Sequence[str]) -> str:
    """The ``error_message`` of a partial success: the first :data:`MAX_NAMED` spans."""
    named = "; ".join(rejected[:MAX_NAMED])
    more = len(rejected) - MAX_NAMED
    suffix = f"; and {more} more" if more > 0 else ""
    return f"{len(rejected)} span(s) rejected: {named}{suffix}"


def decode_batch(
    body: bytes, encoding: str | None, *, as_json: bool, mapping: OtlpMapping, limit: int
) -> SpanBatch:
    """A request body (compressed or not, protobuf or JSON) -> its :class:`SpanBatch`.

    Raises:
        OtlpBodyError: The body cannot be decoded.
        OtlpTooLargeError: It is over ``limit`` bytes once decompressed.
        ValueError: An unsupported ``Content-Encoding``.
    """
    raw = inflate(body, encoding, limit)
    decode = decode_json if as_json else decode_protobuf
    return span_rows(decode(raw, mapping.wanted()), mapping)
