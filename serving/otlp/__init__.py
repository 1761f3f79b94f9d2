"""OTLP/HTTP trace ingest: GenAI request spans (vLLM, LiteLLM, ...) as completion records.

Nothing here imports ``opentelemetry-proto`` until a protobuf body arrives.
"""

from serving.otlp._decode import OtlpBodyError, OtlpTooLargeError, SpanView
from serving.otlp._mapping import MAPPED_FIELDS, OtlpMapping
from serving.otlp._metrics import count_spans
from serving.otlp._records import COLUMNS, SpanBatch, decode_batch, error_message, span_rows
from serving.otlp._response import JSON, PROTOBUF, export_response, status_response

__all__ = [
    "COLUMNS",
    "JSON",
    "MAPPED_FIELDS",
    "PROTOBUF",
    "OtlpBodyError",
    "OtlpMapping",
    "OtlpTooLargeError",
    "SpanBatch",
    "SpanView",
    "count_spans",
    "decode_batch",
    "error_message",
    "export_response",
    "span_rows",
    "status_response",
]
