"""What an ingest reports back: counts, and every rejected input with its reason.

Example:
    >>> r = IngestReport(accepted=2, duplicates=1, rejected=(
    ...     Rejection(index=3, line=5, field="latency_s", reason="must be > 0 (got -1)"),))
    >>> r.total
    4
    >>> r.rejected[0].describe("calls.csv")
    "calls.csv:5: field 'latency_s': must be > 0 (got -1)"
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Rejection(BaseModel):
    """One input that was not stored, and why.

    Attributes:
        index: 0-based position of the input among everything submitted in the call.
        line: 1-based source line (or row, for columnar files); for API batches the
            1-based position in the batch.
        field: The record field at fault, or ``None`` when the whole row is.
        reason: What is wrong, in words a user can act on.
    """

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0)
    line: int | None = None
    field: str | None = None
    reason: str

    def describe(self, file: str | None = None, location: str = "") -> str:
        """Render as ``file:line: field 'x': reason`` (parts omitted when unknown).

        Args:
            file: The source file name, if any.
            location: Word placed before the line number (``"row "`` for columnar files).
        """
        where = ":".join(
            p for p in (file, f"{location}{self.line}" if self.line is not None else None) if p
        )
        what = f"field {self.field!r}: " if self.field else ""
        return f"{where}: {what}{self.reason}" if where else f"{what}{self.reason}"


class IngestReport(BaseModel):
    """The outcome of one ingest call.

    Attributes:
        accepted: Records newly stored (durable when the call returned).
        duplicates: Valid records whose ``request_id`` was already stored, or repeated
            earlier in the same call; nothing was written for them.
        rejected: Inputs that failed validation, each with its reason.
        duplicate_indices: 0-based positions of the duplicates among everything
            submitted in the call (as :attr:`Rejection.index`), so a caller can act on
            the newly stored records only (e.g. judge a retried completion once).
    """

    model_config = ConfigDict(frozen=True)

    accepted: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    rejected: tuple[Rejection, ...] = ()
    duplicate_indices: tuple[int, ...] = ()

    @property
    def total(self) -> int:
        """Inputs seen: accepted + duplicates + rejected."""
        return self.accepted + self.duplicates + len(self.rejected)

    def __add__(self, other: IngestReport) -> IngestReport:
        return IngestReport(
            accepted=self.accepted + other.accepted,
            duplicates=self.duplicates + other.duplicates,
            rejected=self.rejected + other.rejected,
            duplicate_indices=self.duplicate_indices + other.duplicate_indices,
        )
