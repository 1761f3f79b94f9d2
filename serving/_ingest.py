"""Group commit of ``POST /v1/completions``: concurrent calls share one store transaction.

A store ingest costs a fixed few tens of milliseconds (the validation SQL is planned per
batch) plus little per row, so storing each call on its own caps a service at a few
dozen calls per second. Calls that arrive while a transaction runs wait for it to end
and are then stored together in the next one (a :class:`~serving._batcher.MicroBatcher`
with the store ingest as its run function): no fixed delay, one commit for all of them,
and each call is answered only once that commit is durable. Each call gets the outcome
of its own items; a ``request_id`` repeated across concurrent calls is stored once, the
later item counted a duplicate, exactly as if the calls had come one after another.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def completion_writer(store: RecordStore, max_items: int) -> MicroBatcher[Any, Outcome]:
    """The group-commit batcher of ``store`` (context: the ``source`` label)."""

    def run(source: str, items: list[Any]) -> list[Outcome]:
        return outcomes(store.ingest_rows(items, source), len(items))

    return MicroBatcher(run, max_items, name="completions")


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
