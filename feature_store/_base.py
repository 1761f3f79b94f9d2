"""The record-store protocol every feature-store backend implements.

One concept: a durable, idempotent store of completion records with prompt
texts, cached prompt embeddings, and point-in-time-correct training frames.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from core import CompletionRecord, IngestReport
from core.drift import AlertMessage
from feature_store._rows import columns_table, rows_table


class GroupStats(BaseModel):
    """Counts and latency quantiles of one (served_model, device) group.

    Attributes:
        served_model: The served model.
        device: The device or endpoint.
        records: Records stored.
        with_latency: Records that carry an observed latency.
        first_submitted: Earliest submission time.
        last_submitted: Latest submission time.
        latency_p50_s: Median latency in seconds (None without latencies).
        latency_p90_s: 0.9 quantile of latency in seconds.
        latency_p99_s: 0.99 quantile of latency in seconds.
    """

    model_config = ConfigDict(frozen=True)

    served_model: str
    device: str
    records: int
    with_latency: int
    first_submitted: datetime
    last_submitted: datetime
    latency_p50_s: float | None
    latency_p90_s: float | None
    latency_p99_s: float | None


class StoreStats(BaseModel):
    """A summary of what the store holds."""

    model_config = ConfigDict(frozen=True)

    path: str
    records: int
    prompts: int
    embeddings: dict[str, int]
    groups: tuple[GroupStats, ...]
    ingests: int


class EndpointStats(BaseModel):
    """Recent observed speed of one (served_model, device) endpoint.

    Attributes:
        completions: Completions the statistics are over (at most the window).
        median_tokens_per_s: Median of output_tokens / latency_s.
        median_latency_s: Median end-to-end latency in seconds.
    """

    model_config = ConfigDict(frozen=True)

    completions: int
    median_tokens_per_s: float | None
    median_latency_s: float | None


class PreviousCall(BaseModel):
    """The previous call of a record's workflow, as the record's forecast could know it.

    The training frame's ``wf_prev_*``: the call before it in its workflow (same
    served model, ordered by step, submission time, request id), only when that call
    had completed before the record was submitted.

    Attributes:
        output_tokens: Tokens the previous call generated (None if not recorded).
        latency_s: Its end-to-end latency, seconds.
    """

    model_config = ConfigDict(frozen=True)

    output_tokens: int | None
    latency_s: float


Progress = Callable[[int], None]


class StoreLock(ABC):
    """A named lock held through the store, shared by every process using it.

    PostgreSQL holds a session advisory lock on a dedicated connection (the server
    releases it when the holder's connection dies, e.g. on SIGKILL); the embedded
    DuckDB store has one process, so its locks are in-process.
    """

    name: str

    @abstractmethod
    def held(self) -> bool:
        """Whether the lock is still held (False once released or its connection died)."""

    @abstractmethod
    def release(self) -> None:
        """Release the lock (idempotent)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RecordStore(ABC):
    """A durable, idempotent store of completion records.

    Contract: ``request_id`` is the idempotency key (a record already stored is a
    duplicate, never a second row); a record counted as accepted is durable when the
    call returns; an invalid input is rejected with its reason and never takes valid
    inputs of the same call down with it.
    """

    @abstractmethod
    def ingest_batches(
        self,
        batches: Iterable[pa.Table],
        source: str | None = None,
        progress: Progress | None = None,
        *,
        judge: bool = True,
    ) -> IngestReport:
        """Validate and store raw batches (see :mod:`feature_store.importers`) atomically.

        Either every valid record of every batch is stored, or (if reading a batch
        raises) nothing is.

        Args:
            batches: Canonical raw batches, e.g. from an importer.
            source: Label recorded with each stored record (e.g. the file name).
            progress: Called with the number of inputs after each batch.
            judge: Enqueue the newly stored completions that carry a latency for the
                drift judge (live outcomes); ``False`` for a backfill of history, which
                is training data, not outcomes of the champion's forecasts.
        """

    def ingest(
        self, records: Iterable[CompletionRecord], source: str | None = None
    ) -> IngestReport:
        """Store already-validated records (idempotent on ``request_id``)."""
        rows = [r.model_dump() for r in records]
        return self.ingest_rows(rows, source=source)

    def ingest_rows(
        self, rows: Sequence[Mapping[str, Any]], source: str | None = None
    ) -> IngestReport:
        """Validate and store untrusted mappings (e.g. a JSON batch from the API).

        The rows go to :meth:`ingest_batches` as one raw batch; a row that cannot be a
        record (e.g. with an unknown key) is rejected on its own.
        """
        return self.ingest_batches([rows_table(rows)], source=source)

    def ingest_columns(
        self, columns: Mapping[str, Sequence[Any]], source: str | None = None
    ) -> IngestReport:
        """Validate and store untrusted columns whose values are mostly typed already.

        Same contract and outcomes as :meth:`ingest_rows` of the rows the columns hold
        (row ``i`` is ``{name: column[i]}``, ``None`` for absent); typed columns skip
        the per-value checks (see :func:`feature_store.columns_table`).

        Args:
            columns: Record field name -> one value per row, all the same length.
            source: Label recorded with each stored record.

        Raises:
            ValueError: A name is no record field, or the columns differ in length.
        """
        return self.ingest_batches([columns_table(columns)], source=source)

    @abstractmethod
    def training_frame(
        self,
        served_model: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        columns: Sequence[str] | None = None,
        *,
        as_of: datetime | None = None,
        require: Sequence[str] = ("latency_s",),
        endpoint_window: int = 50,
    ) -> pa.Table:
        """Build a point-in-time-correct training frame.

        Rows are records submitted in ``[start, end)`` whose outcome was known at
        ``as_of`` (completed at or before it; default ``end``, else no limit) and whose
        ``require`` columns are not null, ordered by submission time. Endpoint features
        (``ep_median_tokens_per_s``, ``ep_median_latency_s``, ``ep_completions``) use
        only completions of the same (served_model, device) that finished strictly
        before the row was submitted: the same figures a live predictor could see.

        Args:
            served_model: Restrict to one served model (None: all).
            start: Inclusive lower bound on ``submitted_at``.
            end: Exclusive upper bound on ``submitted_at``.
            columns: Columns to return (default: all record fields incl. ``prompt``,
                plus ``prompt_sha256`` and the endpoint features).
            as_of: The knowledge cut-off.
            require: Columns that must be non-null (the target, usually).
            endpoint_window: Completions the endpoint features look back over.
        """

    @abstractmethod
    def endpoint_stats(
        self, served_model: str, device: str, at: datetime, window: int = 50
    ) -> EndpointStats:
        """Endpoint features as a live predictor sees them at time ``at``."""

    @abstractmethod
    def previous_calls(self, request_ids: Sequence[str]) -> dict[str, PreviousCall]:
        """The workflow features of stored records, exactly as their training rows get them.

        Args:
            request_ids: Records to look up (at most a judged batch; duplicates allowed).

        Returns:
            ``request_id`` -> its :class:`PreviousCall`, for each record that has one:
            records without a workflow, first calls, calls whose predecessor had not
            completed when they were submitted, and unknown ids are absent.
        """

    @abstractmethod
    def put_embeddings(
        self, encoder_id: str, prompt_sha256: Sequence[str], vectors: npt.NDArray[np.float32]
    ) -> int:
        """Cache prompt embeddings; returns how many were new."""

    @abstractmethod
    def get_embeddings(
        self, encoder_id: str, prompt_sha256: Sequence[str]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        """Look up cached embeddings: (found mask, matrix with zero rows where missing)."""

    @abstractmethod
    def prompts_missing_embeddings(self, encoder_id: str) -> Iterator[tuple[str, str]]:
        """Yield (sha256, text) of stored prompts with no embedding for ``encoder_id``."""

    @abstractmethod
    def stats(self) -> StoreStats:
        """Summarize the store."""

    # --- coordination between processes (see docs/decisions/2026-12-06-shared-store.md) ---
    @abstractmethod
    def try_lock(self, name: str) -> StoreLock | None:
        """Take the named lock without waiting: a held :class:`StoreLock`, or ``None``.

        Names in use: ``drift-judge`` (the replica that judges drift) and
        ``retrain:<served_model>`` (a retraining job of that served model).
        """

    @abstractmethod
    def drift_inbox_take(self, limit: int = 1000) -> pa.Table:
        """The oldest completions not yet judged for drift, at most ``limit``.

        Every ingest enqueues its newly stored records that carry a latency, in the
        same transaction. Columns: every field of :class:`core.CompletionRecord`
        (``prompt`` included), in enqueue order. Taking does not remove: a judge
        acknowledges with :meth:`drift_inbox_ack` once it has acted on them.
        """

    @abstractmethod
    def drift_inbox_ack(self, request_ids: Sequence[str]) -> int:
        """Remove judged completions from the inbox; how many were removed."""

    @abstractmethod
    def drift_inbox_size(self) -> int:
        """Completions waiting in the drift inbox."""

    @abstractmethod
    def save_drift_state(
        self,
        states: Mapping[str, str],
        *,
        drop: Sequence[str] = (),
        ack: Sequence[str] = (),
    ) -> None:
        """Persist the drift judge's state, in one transaction.

        Upserts ``states`` (key: a drift group's key or the judge's own key; value: the
        JSON text :mod:`drift` wrote, kept verbatim), deletes the keys in ``drop`` and
        acknowledges the completions ``ack`` from the drift inbox (as
        :meth:`drift_inbox_ack`), so a judged batch and the state it led to are
        committed together, or neither is. A key both upserted and dropped is dropped
        first, so its new state is kept.
        """

    @abstractmethod
    def load_drift_state(self) -> dict[str, str]:
        """Every persisted drift state (see :meth:`save_drift_state`), by key."""

    @abstractmethod
    def claim_alerts(
        self, now: datetime, holder: str, lease_s: float = 60.0, limit: int = 100
    ) -> list[AlertMessage]:
        """Claim up to ``limit`` due alerts of the outbox for ``holder`` for ``lease_s`` seconds.

        Due: pending, ``next_attempt_at <= now``, unclaimed or with an expired lease;
        oldest due first. No other claim returns an alert while its lease runs;
        recording an attempt or marking it delivered ends the claim. An alert whose
        deliverer died is due again when the lease ends (delivery is at least once).
        """

    @abstractmethod
    def close(self) -> None:
        """Release the store (flushes and checkpoints)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
