"""llm-d's training data as tailcast stores it: the train/test split and ``/flush``.

llm-d's training server keeps its samples in memory, 90 % as training data and 10 %
as test data, and ``POST /flush`` empties either part. tailcast stores every sample
durably as a completion record (see :mod:`serving.compat._mapping`), so here:

* a sample's part is a function of its request id: one in :data:`TEST_SHARDS` of the
  hash values is test data, so a retried sample always lands in the same part;
* flushing a part records a cut-off (UTC) in ``<home>/llm-d/flush.json``; samples of
  that part observed (``timestamp``) before the cut-off no longer count, are no
  longer retrained on, and stay in the store (which only ever appends).

Example:
    >>> is_test("llmd-00"), FlushMarks().keeps("llmd-00", datetime(2026, 1, 1, tzinfo=UTC))
    (False, True)
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

#: A sample is test data when its hash falls in the first of this many shards (10 %).
TEST_SHARDS = 10
#: Frame columns the counts and filters read.
COLUMNS = ["request_id", "submitted_at", "output_tokens", "latency_s"]
_LOCK = threading.Lock()


def is_test(request_id: str) -> bool:
    """Whether the sample with ``request_id`` is llm-d test data (stable, ~10 %)."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % TEST_SHARDS == 0


@dataclass(frozen=True, slots=True)
class FlushMarks:
    """Cut-offs of the two parts: samples observed before one are flushed.

    Attributes:
        train_before: Training samples observed before this were flushed.
        test_before: Test samples observed before this were flushed.
    """

    train_before: datetime | None = None
    test_before: datetime | None = None

    def keeps(self, request_id: str, observed_at: datetime) -> bool:
        """Whether a sample survives the flushes so far."""
        cut = self.test_before if is_test(request_id) else self.train_before
        return cut is None or observed_at >= cut

    def flushed(self, training: bool, test: bool, at: datetime) -> FlushMarks:
        """These marks after flushing the given parts at ``at``."""
        marks = replace(self, train_before=at) if training else self
        return replace(marks, test_before=at) if test else marks


def marks_path(home: Path) -> Path:
    """Where the flush cut-offs of a tailcast home are kept."""
    return home / "llm-d" / "flush.json"


def load_marks(home: Path, served_model: str) -> FlushMarks:
    """The flush cut-offs of ``served_model`` (none when never flushed)."""
    path = marks_path(home)
    if not path.exists():
        return FlushMarks()
    raw: dict[str, Any] = json.loads(path.read_text()).get(served_model, {})
    return FlushMarks(
        **{k: datetime.fromisoformat(v) for k, v in raw.items() if k in FlushMarks.__slots__}
    )


def flush(home: Path, served_model: str, training: bool, test: bool, at: datetime) -> FlushMarks:
    """Flush the given parts of ``served_model``'s samples at ``at``; returns the new marks."""
    with _LOCK:
        marks = load_marks(home, served_model).flushed(training, test, at)
        _save_marks(home, served_model, marks)
    return marks


def _save_marks(home: Path, served_model: str, marks: FlushMarks) -> None:
    path = marks_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    every: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    every[served_model] = {
        k: getattr(marks, k).isoformat()
        for k in FlushMarks.__slots__
        if getattr(marks, k) is not None
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(every, indent=2))
    tmp.replace(path)


def retained(frame: pa.Table, marks: FlushMarks) -> pa.Table:
    """The rows of a training frame (with ``request_id``, ``submitted_at``) not flushed."""
    import pyarrow as pa

    if marks.train_before is None and marks.test_before is None:
        return frame
    ids = frame.column("request_id").to_pylist()
    at = frame.column("submitted_at").to_pylist()
    keep = [marks.keeps(r, _utc(t)) for r, t in zip(ids, at, strict=True)]
    return frame.filter(pa.array(keep, type=pa.bool_()))


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PartCounts:
    """Samples of one part: with a TTFT, and with a TPOT (generated tokens)."""

    ttft: int = 0
    tpot: int = 0

    def as_dict(self) -> dict[str, int]:
        """llm-d's ``{ttft_samples, tpot_samples, total_samples}``."""
        return {"ttft_samples": self.ttft, "tpot_samples": self.tpot, "total_samples": self.total}

    @property
    def total(self) -> int:
        """TTFT plus TPOT samples, as llm-d counts them."""
        return self.ttft + self.tpot


def count_parts(frame: pa.Table, marks: FlushMarks) -> tuple[PartCounts, PartCounts]:
    """Training and test counts of a frame with :data:`COLUMNS` (TTFT required)."""
    kept = retained(frame, marks)
    train = [0, 0]
    test = [0, 0]
    for rid, tokens, latency in zip(
        kept.column("request_id").to_pylist(),
        kept.column("output_tokens").to_pylist(),
        kept.column("latency_s").to_pylist(),
        strict=True,
    ):
        part = test if is_test(rid) else train
        part[0] += 1
        part[1] += int(bool(tokens) and latency is not None)
    return PartCounts(*train), PartCounts(*test)
