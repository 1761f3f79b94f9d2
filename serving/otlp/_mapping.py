"""Which OpenTelemetry attributes become which completion-record fields.

vLLM (``--otlp-traces-endpoint``) exports one ``llm_request`` span per request with the
attribute names of ``vllm.tracing.SpanAttributes``; the OpenTelemetry GenAI semantic
conventions name some of the same facts differently. Each record field is looked up
under a list of attribute keys, first match wins: vLLM's names first, the semantic
conventions' second, and ``tailcast.*`` keys (set by the operator, e.g. through
``OTEL_RESOURCE_ATTRIBUTES`` or a Collector processor) before both where the servers
carry nothing (served model, device, prompt class). For each key the span's own
attributes are read before its resource's.

Example:
    >>> OtlpMapping().input_tokens
    ('gen_ai.usage.prompt_tokens', 'gen_ai.usage.input_tokens')
    >>> OtlpMapping(device=("k8s.node.name",)).keys_of("device")
    ('k8s.node.name',)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from core import CompletionRecord

#: Record fields filled from attributes: every ``CompletionRecord`` field but the
#: prompt (never read from spans) and ``submitted_at`` (the span's start time).
MAPPED_FIELDS = tuple(
    f for f in CompletionRecord.model_fields if f not in ("prompt", "submitted_at")
)


@dataclass(frozen=True, slots=True)
class OtlpMapping:
    """Attribute keys per record field, in priority order (span before resource per key).

    A span is a GenAI request span when its own attributes hold a ``request_id``,
    ``input_tokens``, ``output_tokens`` or ``latency_s`` key and its
    ``gen_ai.operation.name`` (if it has one) is in ``operations``; any other span is
    ignored. Latencies are seconds; a span without a ``latency_s`` attribute is given
    its duration (end minus start time).

    Attributes:
        request_id: The request's id: the idempotency key of the record.
        served_model: The model that served the request.
        device: Where it ran (a device type or an endpoint).
        prompt_class: A class label of the prompt.
        input_tokens: Prompt tokens.
        cached_tokens: Prompt tokens served from a prefix cache.
        output_tokens: Generated tokens.
        latency_s: End-to-end latency, seconds.
        ttft_s: Time to first token, seconds.
        num_running: Requests running on the replica at submission.
        num_waiting: Requests queued on the replica at submission.
        kv_cache_util: KV-cache utilisation in [0, 1] at submission.
        workflow_id: The agentic task the call belongs to.
        step: 0-based index of the call within its workflow.
        operations: ``gen_ai.operation.name`` values of request spans (a span naming
            another operation, e.g. ``embeddings`` or ``execute_tool``, is ignored).
        default_device: Device of a span none of whose ``device`` keys is set
            (``None``: such a span is rejected).
        span_names: When not empty, only spans with one of these names are read
            (e.g. ``("llm_request",)`` for vLLM alone).
    """

    request_id: tuple[str, ...] = ("gen_ai.request.id", "gen_ai.response.id")
    served_model: tuple[str, ...] = (
        "tailcast.served_model",
        "gen_ai.response.model",
        "gen_ai.request.model",
    )
    device: tuple[str, ...] = ("tailcast.device", "server.address", "host.name")
    prompt_class: tuple[str, ...] = ("tailcast.prompt_class",)
    input_tokens: tuple[str, ...] = ("gen_ai.usage.prompt_tokens", "gen_ai.usage.input_tokens")
    cached_tokens: tuple[str, ...] = ("gen_ai.usage.cache_read.input_tokens",)
    output_tokens: tuple[str, ...] = (
        "gen_ai.usage.completion_tokens",
        "gen_ai.usage.output_tokens",
    )
    latency_s: tuple[str, ...] = ("gen_ai.latency.e2e",)
    ttft_s: tuple[str, ...] = ("gen_ai.latency.time_to_first_token",)
    num_running: tuple[str, ...] = ("tailcast.num_running",)
    num_waiting: tuple[str, ...] = ("tailcast.num_waiting",)
    kv_cache_util: tuple[str, ...] = ("tailcast.kv_cache_util",)
    workflow_id: tuple[str, ...] = ("tailcast.workflow_id",)
    step: tuple[str, ...] = ("tailcast.step",)
    operations: tuple[str, ...] = ("chat", "text_completion", "generate_content")
    default_device: str | None = None
    span_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # a list from a config file: keep the config frozen
                object.__setattr__(self, f.name, tuple(value))
        if not self.request_id:
            raise ValueError("the request_id mapping needs at least one attribute key")
        if self.default_device is not None and not self.default_device.strip():
            raise ValueError("default_device must not be blank")

    def keys_of(self, field: str) -> tuple[str, ...]:
        """The attribute keys of record field ``field``, in priority order (none: ``()``)."""
        keys: tuple[str, ...] = getattr(self, field, ())
        return keys

    def markers(self) -> frozenset[str]:
        """Span attribute keys whose presence makes a span a GenAI request span."""
        return frozenset(
            (*self.request_id, *self.input_tokens, *self.output_tokens, *self.latency_s)
        )

    def wanted(self) -> frozenset[str]:
        """Every attribute key the mapping reads (others are skipped while decoding)."""
        keys = {key for name in MAPPED_FIELDS for key in self.keys_of(name)}
        return frozenset(keys | {OPERATION})


#: The semantic conventions' operation attribute (``chat``, ``embeddings``, ...).
OPERATION = "gen_ai.operation.name"
