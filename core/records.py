"""Completion records: what was asked, where it ran and what happened.

A :class:`CompletionRecord` is the unit every tailcast component reads and writes.
Units are seconds and tokens everywhere. ``request_id`` is the idempotency key: a
record whose ``request_id`` is already stored is a duplicate, never a second row.

The same constraints that validate one record here also drive the vectorized
validation of whole files in the feature store: :func:`field_specs` exposes them, so
the rules live in exactly one place (this model). The limits every entry point shares
(:data:`MAX_PROMPT_CHARS`, :data:`MAX_COUNT`, the timestamp range
:data:`EARLIEST_TIME`..:data:`LATEST_TIME`) are defined here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from types import NoneType, UnionType
from typing import Annotated, Literal, Self, Union, get_args, get_origin

import annotated_types
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

#: Longest prompt, in characters (Unicode code points), wherever a prompt enters tailcast:
#: completion records (API and files), forecast requests and the feature store.
MAX_PROMPT_CHARS = 1_000_000
#: Largest count (tokens, queue lengths, steps): every integer up to it is exact as a
#: float64, which the features and the store's validation compute in.
MAX_COUNT = 2**53 - 1
#: Earliest and latest instants a record may carry (``submitted_at``, and the completion
#: time ``submitted_at + latency_s``): the range Python, DuckDB and PostgreSQL all hold.
EARLIEST_TIME = datetime(1, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)

Identifier = Annotated[str, Field(min_length=1, max_length=256)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]

FieldKind = Literal["str", "int", "float", "timestamp"]


class CompletionRecord(BaseModel):
    """One finished (or at least submitted) LLM request.

    Attributes:
        request_id: Caller-chosen unique id; the idempotency key of every write.
        served_model: The model that served the request (e.g. ``deepseek-chat``).
        device: Where it ran: a device type (``h100``) or an endpoint (``deepseek-api``).
        submitted_at: When the request was submitted (timezone-aware; stored as UTC).
        prompt: Prompt text, when the source has it (used for semantic features).
        prompt_class: A caller-supplied class label; overrides learned classes.
        input_tokens: Prompt length in tokens.
        cached_tokens: Prompt tokens served from a prefix cache (<= input_tokens).
        output_tokens: Generated tokens.
        latency_s: End-to-end latency in seconds, submission to last token. ``None``
            for sources that carry no outcome (arrival traces); such records never
            enter a latency training frame.
        ttft_s: Time to first token in seconds (<= latency_s).
        num_running: Requests running on the replica when this one was submitted.
        num_waiting: Requests queued on the replica when this one was submitted.
        kv_cache_util: KV-cache utilisation in [0, 1] at submission.
        prefill_tokens_in_flight: Prompt tokens being prefilled on the replica when this
            one was submitted (llm-d's ``prefill_tokens_in_flight``).
        decode_tokens_in_flight: Tokens being decoded on the replica when this one was
            submitted (llm-d's ``decode_tokens_in_flight``).
        workflow_id: The agentic task (workflow) this call belongs to.
        step: 0-based index of the call within its workflow.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    request_id: Identifier
    served_model: Identifier
    device: Identifier
    submitted_at: AwareDatetime
    prompt: Annotated[str, Field(max_length=MAX_PROMPT_CHARS)] | None = None
    prompt_class: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    input_tokens: Count | None = None
    cached_tokens: Count | None = None
    output_tokens: Count | None = None
    latency_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    ttft_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    num_running: Count | None = None
    num_waiting: Count | None = None
    kv_cache_util: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    prefill_tokens_in_flight: Count | None = None
    decode_tokens_in_flight: Count | None = None
    workflow_id: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    step: Count | None = None

    @field_validator("submitted_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        try:
            return value.astimezone(UTC)
        except OverflowError:  # year 1 or 9999 shifted out of range by its offset
            raise ValueError(f"outside {EARLIEST_TIME} .. {LATEST_TIME}") from None

    @model_validator(mode="after")
    def _cross_field(self) -> Self:
        for rule in CROSS_FIELD_RULES:
            left, right = getattr(self, rule.left), getattr(self, rule.right)
            if left is not None and right is not None and left > right:
                raise ValueError(f"{rule.left} must be <= {rule.right} ({left} > {right})")
        if self.latency_s is not None and self.latency_s > seconds_left(self.submitted_at):
            raise ValueError(f"latency_s: submitted_at + latency_s is after {LATEST_TIME}")
        return self


def seconds_left(at: datetime) -> float:
    """Seconds from ``at`` to :data:`LATEST_TIME`: the longest latency a record at ``at`` has.

    >>> seconds_left(datetime(9999, 12, 31, 23, 59, tzinfo=UTC)) > 59.99
    True
    """
    return (LATEST_TIME - at).total_seconds()


def text_problem(text: str) -> str | None:
    r"""Why ``text`` cannot be stored, or ``None``: a lone surrogate is not valid Unicode.

    JSON's ``"\ud800"`` escape decodes to one in Python, yet no UTF-8 store (Arrow,
    DuckDB, PostgreSQL) can hold it.

    >>> text_problem("caf\u00e9") is None, text_problem("a\ud800")
    (True, 'not valid Unicode: lone surrogate U+D800 at character 1')
    """
    if text.isascii():
        return None
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        return f"not valid Unicode: lone surrogate U+{code:04X} at character {exc.start}"
    return None


@dataclass(frozen=True, slots=True)
class CrossFieldRule:
    """``left <= right`` whenever both are present."""

    left: str
    right: str


CROSS_FIELD_RULES: tuple[CrossFieldRule, ...] = (
    CrossFieldRule("cached_tokens", "input_tokens"),
    CrossFieldRule("ttft_s", "latency_s"),
)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """The validation contract of one :class:`CompletionRecord` field.

    Attributes:
        name: Field name (also the column name in every tabular format).
        kind: Scalar kind of the value.
        required: Whether a record without it is rejected.
        ge: Inclusive lower bound, if any.
        gt: Exclusive lower bound, if any.
        le: Inclusive upper bound, if any.
        min_length: Minimum string length, if any.
        max_length: Maximum string length, if any.
    """

    name: str
    kind: FieldKind
    required: bool
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    min_length: int | None = None
    max_length: int | None = None


_KINDS: dict[type, FieldKind] = {str: "str", int: "int", float: "float", datetime: "timestamp"}


def _spec_for(name: str, annotation: object, required: bool, metadata: list[object]) -> FieldSpec:
    meta = list(metadata)
    base = annotation
    # Unwrap Optional[...] and Annotated[...] layers, collecting constraints.
    while True:
        origin = get_origin(base)
        if origin in (Union, UnionType):
            args = [a for a in get_args(base) if a is not NoneType]
            base = args[0]
        elif origin is Annotated:
            base, *extra = get_args(base)
            for item in extra:
                meta.extend(getattr(item, "metadata", [item]))
        else:
            break
    kind = _KINDS[base] if isinstance(base, type) and base in _KINDS else "timestamp"
    bounds: dict[str, float | int | None] = {}
    for item in meta:
        for attr, key in (
            (annotated_types.Ge, "ge"),
            (annotated_types.Gt, "gt"),
            (annotated_types.Le, "le"),
            (annotated_types.MinLen, "min_length"),
            (annotated_types.MaxLen, "max_length"),
        ):
            if isinstance(item, attr):
                bounds[key] = getattr(item, key)
    return FieldSpec(name=name, kind=kind, required=required, **bounds)  # type: ignore[arg-type]


def field_specs() -> tuple[FieldSpec, ...]:
    """Return the validation contract of every record field, in declaration order.

    >>> [s.name for s in field_specs()][:4]
    ['request_id', 'served_model', 'device', 'submitted_at']
    >>> next(s for s in field_specs() if s.name == "latency_s").gt
    0
    """
    return tuple(
        _spec_for(name, info.annotation, info.is_required(), info.metadata)
        for name, info in CompletionRecord.model_fields.items()
    )


RECORD_FIELDS: tuple[str, ...] = tuple(CompletionRecord.model_fields)
REQUIRED_FIELDS: tuple[str, ...] = tuple(
    n for n, f in CompletionRecord.model_fields.items() if f.is_required()
)
