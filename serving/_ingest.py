"""Group commit of ``POST /v1/completions``: concurrent calls share one store transaction.

A store ingest costs a fixed few tens of milliseconds (the validation SQL is planned per
batch) plus little per row, so storing each call on its own caps a service at a few
dozen calls per second. Calls that arrive while a transaction runs wait for it to end
and are then stored together in the next one (a :class:`~serving._batcher.MicroBatcher`
with the store ingest as its run function): no fixed delay, one commit for all of them,
and each call is answered only once that commit is durable. An idle writer lingers
``linger_s`` before its first transaction (``ServingConfig.completion_linger_s``), so
calls posted one at a time (a gateway reporting each completion as it ends) share
transactions too. Each call gets the outcome
of its own items; a ``request_id`` repeated across concurrent calls is stored once, the
later item counted a duplicate, exactly as if the calls had come one after another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from core import IngestReport, Rejection
from feature_store import RecordStore
from serving._batcher import MicroBatcher

#: What happened to one item: stored now, stored before (or earlier in the batch), or why not.
Outcome = Literal["accepted", "duplicate"] | Rejection


def outcomes(report: IngestReport, n: int) -> list[Outcome]:
    """Per-item outcomes of an ingest of ``n`` items, in order.

    >>> r = IngestReport(accepted=1, duplicates=1, duplicate_indices=(2,),
    ...     rejected=(Rejection(index=1, field="latency_s", reason="must be > 0"),))
    >>> [o if isinstance(o, str) else o.field for o in outcomes(r, 3)]
    ['accepted', 'latency_s', 'duplicate']
    """
    out: list[Outcome] = ["accepted"] * n
    for i in report.duplicate_indices:
        out[i] = "duplicate"
    for r in report.rejected:
        out[r.index] = r
    return out


@dataclass(frozen=True, slots=True)
class TupleRows:
    """Context (and key) of calls whose items are row tuples rather than mappings.

    Such items are stored as columns (:meth:`feature_store.RecordStore.ingest_columns`):
    each column that holds only values of its field's type is converted in one call,
    not checked value by value. Calls of one ``TupleRows`` share a transaction; they
    never share one with mapping items (other keys).

    Attributes:
        source: The ``source`` label of the stored records.
        names: The record field of each tuple position.
    """

    source: str
    names: tuple[str, ...]

    def columns(self, items: Sequence[tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
        """``items`` as columns by record field (empty columns when there are none).

        >>> TupleRows("s", ("request_id", "input_tokens")).columns([("a", 1), ("b", 2)])
        {'request_id': ('a', 'b'), 'input_tokens': (1, 2)}
        """
        if not items:
            return dict.fromkeys(self.names, ())
        return dict(zip(self.names, zip(*items, strict=True), strict=True))


def completion_writer(
    store: RecordStore, max_items: int, linger_s: float = 0.0
) -> MicroBatcher[Any, Outcome]:
    """The group-commit batcher of ``store`` (``linger_s``: see the module docstring).

    The context of a call is its ``source`` label (items: untrusted mappings, stored by
    :meth:`~feature_store.RecordStore.ingest_rows`) or a :class:`TupleRows` (items:
    row tuples, stored by :meth:`~feature_store.RecordStore.ingest_columns`).
    """

    def run(context: str | TupleRows, items: list[Any]) -> list[Outcome]:
        if isinstance(context, TupleRows):
            report = store.ingest_columns(context.columns(items), context.source)
        else:
            report = store.ingest_rows(items, context)
        return outcomes(report, len(items))

    return MicroBatcher(run, max_items, name="completions", linger_s=linger_s)


def report_of(items: Sequence[Outcome]) -> IngestReport:
    """One call's :class:`IngestReport` from its items' outcomes (indices its own)."""
    rejected = tuple(
        Rejection(index=i, line=i + 1, field=o.field, reason=o.reason)
        for i, o in enumerate(items)
        if isinstance(o, Rejection)
    )
    duplicates = tuple(i for i, o in enumerate(items) if o == "duplicate")
    return IngestReport(
        accepted=sum(1 for o in items if o == "accepted"),
        duplicates=len(duplicates),
        rejected=rejected,
        duplicate_indices=duplicates,
    )
