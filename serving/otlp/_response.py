r"""OTLP/HTTP answers: ``ExportTraceServiceResponse`` and ``google.rpc.Status`` bodies.

The OTLP/HTTP specification answers in the encoding of the request: protobuf for
``application/x-protobuf``, OTLP/JSON for ``application/json``. A fully accepted
request gets an empty response (``partial_success`` unset); a partly accepted one a
``partial_success`` with the number of rejected spans and a message naming them. A
failed request (4xx/5xx) carries a ``google.rpc.Status`` with a gRPC code and the
reason.

Example:
    >>> status_body(3, "bad", as_json=False)
    b'\x08\x03\x12\x03bad'
    >>> export_body(0, "", as_json=True)
    b'{}'
"""

from __future__ import annotations

import orjson
from starlette.responses import Response

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: gRPC status codes used in ``google.rpc.Status`` bodies.
INVALID_ARGUMENT = 3
RESOURCE_EXHAUSTED = 8
UNAVAILABLE = 14


def export_body(rejected_spans: int, error_message: str, *, as_json: bool) -> bytes:
    """An encoded ``ExportTraceServiceResponse`` (``partial_success`` when ``rejected_spans``)."""
    if as_json:
        if not rejected_spans and not error_message:
            return b"{}"
        partial = {"rejectedSpans": str(rejected_spans), "errorMessage": error_message}
        return orjson.dumps({"partialSuccess": partial})
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTracePartialSuccess,
        ExportTraceServiceResponse,
    )

    response = ExportTraceServiceResponse()
    if rejected_spans or error_message:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected_spans, error_message=error_message)
        )
    return bytes(response.SerializeToString())


def status_body(code: int, message: str, *, as_json: bool) -> bytes:
    """An encoded ``google.rpc.Status`` (``code`` a gRPC status code)."""
    if as_json:
        return orjson.dumps({"code": code, "message": message})
    text = message.encode("utf-8", "backslashreplace")
    # field 1 (code): varint; field 2 (message): length-delimited UTF-8
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def export_response(rejected_spans: int, error_message: str, *, as_json: bool) -> Response:
    """200 with an ``ExportTraceServiceResponse`` in the request's encoding."""
    body = export_body(rejected_spans, error_message, as_json=as_json)
    return Response(body, media_type=JSON if as_json else PROTOBUF)


def status_response(
    status_code: int,
    message: str,
    *,
    as_json: bool,
    headers: dict[str, str] | None = None,
) -> Response:
    """A failed export: ``status_code`` with a ``google.rpc.Status`` naming the reason."""
    if status_code == 503:
        code = UNAVAILABLE
    elif status_code == 413:
        code = RESOURCE_EXHAUSTED
    else:
        code = INVALID_ARGUMENT
    body = status_body(code, message, as_json=as_json)
    return Response(
        body, status_code=status_code, media_type=JSON if as_json else PROTOBUF, headers=headers
    )
