"""The importer contract: a real file format in, canonical record batches out.

An importer never writes anything. It reads one file and yields
:class:`pyarrow.Table` batches in the *canonical raw layout*:

* ``_line`` (int64, required): 1-based line of the source file where the record
  starts (for columnar files such as Parquet, the 1-based row; see
  :attr:`Importer.location`). Used in every rejection message.
* any subset of :data:`core.RECORD_FIELDS` as columns, named exactly like the
  :class:`core.CompletionRecord` fields. Values may be typed (int, float, string,
  timestamp) or plain strings: the feature store casts and validates every column
  against the record contract in one vectorized pass. ``submitted_at`` may be an
  Arrow timestamp, an ISO-8601 string (UTC when no offset is given) or unix seconds.
  Missing columns mean "unknown" (null).
* optional ``_error_field`` and ``_error`` (string): a rejection the importer
  detected itself (a row with too few columns, a source row that cannot make a
  record); null for good rows. The store rejects such rows with that reason.

Problems with the file as a whole (unreadable, truncated compression, unknown
column set) raise :class:`core.InputError` naming the file. The store ingests a
file in one transaction, so such an error, wherever it happens, leaves nothing
written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

import pyarrow as pa

LINE = "_line"
ERROR_FIELD = "_error_field"
ERROR = "_error"


class Importer(ABC):
    """Reads one source format into canonical raw batches.

    Subclasses set :attr:`name` (the ``--format`` value) and :attr:`description`,
    and implement :meth:`read`.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    location: ClassVar[Literal["line", "row"]] = "line"

    @abstractmethod
    def read(self, path: Path, batch_rows: int = 100_000) -> Iterator[pa.Table]:
        """Yield canonical raw batches of at most ``batch_rows`` records.

        Args:
            path: The file to read (``.gz`` handled where the format allows).
            batch_rows: Upper bound on rows per yielded table.

        Yields:
            Tables in the canonical raw layout described in this module.

        Raises:
            core.InputError: The file as a whole cannot be read (names the file).
        """
