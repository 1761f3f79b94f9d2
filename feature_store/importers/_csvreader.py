"""Streaming text reading shared by the importers: CSV records and plain lines.

:class:`CsvReader` reads a CSV file (gzip-compressed or not: detected from the magic
bytes, whatever the file is called) with Python's :mod:`csv` module and yields
column-oriented :class:`CsvBatch` es of strings. Each record carries the physical
1-based line where it *starts*, so a record after a quoted field with embedded
newlines is still located exactly. The reader is strict about file-level damage and
lenient about row-level damage:

* a row with the wrong number of fields is kept as a row whose data columns are all
  empty, with ``_error`` = ``"expected N fields, found M"`` (the store rejects it,
  naming its line); blank lines are skipped;
* a truncated or corrupt gzip stream, undecodable UTF-8 or a CSV syntax error (an
  unterminated quote, a character after a closing quote) raises
  :class:`core.InputError` naming the file and the line, because the record
  boundaries after it cannot be trusted.

:func:`text_lines` gives the same guarantees to line-oriented formats (JSON lines).
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc

from core.errors import InputError

FIELD_SIZE_LIMIT = 2**31 - 1
"""Largest CSV field accepted, in characters (the :mod:`csv` default is 131,072)."""

_GZIP_MAGIC = b"\x1f\x8b"
_STREAM_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError, OSError)


def open_text(path: Path) -> IO[str]:
    """Open ``path`` as UTF-8 text, decompressing gzip transparently.

    Compression is detected from the first two bytes, not the file name. A UTF-8 byte
    order mark is dropped. Newlines are passed through untranslated, as :mod:`csv`
    requires.

    Raises:
        core.InputError: The file cannot be opened.
    """
    try:
        with path.open("rb") as probe:
            magic = probe.read(2)
        if magic == _GZIP_MAGIC:
            return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"cannot open file: {exc.strerror or exc}", file=str(path)) from exc


def _stream_error(path: Path, line: int, exc: BaseException) -> InputError:
    kind = "undecodable UTF-8" if isinstance(exc, UnicodeDecodeError) else "unreadable data"
    return InputError(f"{kind} (truncated or corrupt file?): {exc}", file=str(path), line=line)


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line, text)`` for every physical line, 1-based, without the newline.

    Raises:
        core.InputError: The file cannot be opened, or its compressed stream is
            truncated or corrupt, or it is not UTF-8 (names the file and line).
    """
    line = 0
    with open_text(path) as stream:
        try:
            for line, text in enumerate(stream, start=1):
                yield line, text.rstrip("\r\n")
        except _STREAM_ERRORS as exc:
            raise _stream_error(path, line + 1, exc) from exc


def check_columns(
    columns: Sequence[str],
    *,
    required: Iterable[str],
    known: Iterable[str],
    file: Path,
    line: int | None = 1,
) -> None:
    """Check a header against the columns a format requires and knows.

    Args:
        columns: The header, in file order.
        required: Columns that must be present.
        known: Every column the format accepts (a superset of ``required``).
        file: The file the header came from (for the message).
        line: Where the header is (``None`` for formats without header lines).

    Raises:
        core.InputError: Duplicate, unknown or missing columns, all of them listed.
    """
    known_set = set(known)
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    unknown = [c for c in columns if c not in known_set]
    missing = [c for c in required if c not in set(columns)]
    problems = []
    if duplicates:
        problems.append(f"duplicate column(s): {', '.join(duplicates)}")
    if unknown:
        problems.append(
            f"unknown column(s): {', '.join(unknown)} (known: {', '.join(sorted(known_set))})"
        )
    if missing:
        problems.append(f"missing required column(s): {', '.join(missing)}")
    if problems:
        raise InputError("; ".join(problems), file=str(file), line=line)


@dataclass(slots=True)
class CsvBatch:
    """Up to ``batch_rows`` CSV records, column by column.

    Attributes:
        header: Column names, in file order.
        columns: The raw strings of each column (``""`` for an empty field).
        lines: 1-based physical line where each record starts.
        errors: Position in the batch -> rejection message, for malformed rows.
    """

    header: tuple[str, ...]
    columns: Mapping[str, Sequence[str]]
    lines: list[int]
    errors: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.lines)

    def array(self, name: str) -> pa.Array:
        """Return column ``name`` as an Arrow string array; empty fields are null."""
        values = pa.array(self.columns[name], type=pa.string())
        return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


class CsvReader:
    """A streaming CSV reader over one file (context manager).

    The header is read on construction and exposed as :attr:`header` (names stripped
    of surrounding whitespace), so callers can check it before reading records.

    Args:
        path: The CSV file, optionally gzip-compressed.

    Raises:
        core.InputError: The file cannot be opened or has no header line.
    """

    def __init__(self, path: Path) -> None:
        csv.field_size_limit(FIELD_SIZE_LIMIT)
        self.path = path
        self._stream = open_text(path)
        self._reader = csv.reader(self._stream, strict=True)
        try:
            first = self._next_row()
        except InputError:
            self.close()
            raise
        if first is None:
            self.close()
            raise InputError("empty file: no header line", file=str(path), line=1)
        self.header: tuple[str, ...] = tuple(name.strip() for name in first)

    def _next_row(self) -> list[str] | None:
        try:
            return next(self._reader, None)
        except csv.Error as exc:
            raise self._csv_error(exc) from exc
        except _STREAM_ERRORS as exc:
            raise _stream_error(self.path, self._reader.line_num + 1, exc) from exc

    def _csv_error(self, exc: csv.Error) -> InputError:
        return InputError(f"malformed CSV: {exc}", file=str(self.path), line=self._reader.line_num)

    def batches(self, batch_rows: int = 100_000) -> Iterator[CsvBatch]:
        """Yield the records after the header in batches of at most ``batch_rows``.

        Raises:
            core.InputError: The stream is truncated or corrupt, or a CSV syntax error
                makes the record boundaries unknown (names the file and line).
        """
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
        reader, width = self._reader, len(self.header)
        blank = [""] * width
        rows: list[list[str]] = []
        lines: list[int] = []
        errors: dict[int, str] = {}
        previous_end = reader.line_num
        try:
            for row in reader:
                start, previous_end = previous_end + 1, reader.line_num
                if len(row) != width:
                    if not row:  # a blank line
                        continue
                    errors[len(rows)] = f"expected {width} fields, found {len(row)}"
                    row = blank
                rows.append(row)
                lines.append(start)
                if len(rows) == batch_rows:
                    yield self._batch(rows, lines, errors)
                    rows, lines, errors = [], [], {}
        except csv.Error as exc:
            raise self._csv_error(exc) from exc
        except _STREAM_ERRORS as exc:
            raise _stream_error(self.path, reader.line_num + 1, exc) from exc
        if rows:
            yield self._batch(rows, lines, errors)

    def _batch(self, rows: list[list[str]], lines: list[int], errors: dict[int, str]) -> CsvBatch:
        columns = dict(zip(self.header, zip(*rows, strict=True), strict=True))
        return CsvBatch(self.header, columns, lines, errors)

    def close(self) -> None:
        """Close the underlying file."""
        self._stream.close()

    def __enter__(self) -> CsvReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
