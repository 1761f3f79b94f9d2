"""The wire format of the store endpoints: Arrow IPC streams for tables, batches and vectors.

One body carries a sequence of Arrow IPC streams back to back: a new stream starts
whenever the schema changes (an importer may type a column differently from one batch
to the next), so in the usual case a body is exactly one stream. The service spools an
ingest body to a file and reads it back with :func:`read_tables`.

Example:
    >>> import pyarrow as pa
    >>> body = b"".join(stream_tables([pa.table({"a": [1]}), pa.table({"b": ["x"]})]))
    >>> [t.column_names for t in read_tables(pa.BufferReader(body))]
    [['a'], ['b']]
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import numpy.typing as npt
import pyarrow as pa

#: Media type of an Arrow IPC stream body.
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def table_bytes(table: pa.Table) -> bytes:
    """``table`` as one Arrow IPC stream (schema kept, zero rows allowed)."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def bytes_table(body: bytes) -> pa.Table:
    """The table of a body written by :func:`table_bytes` (or several streams of one schema)."""
    tables = list(read_tables(pa.BufferReader(body)))
    if not tables:
        raise ValueError("empty Arrow IPC body")
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def stream_tables(
    tables: Iterable[pa.Table], progress: Callable[[int], None] | None = None
) -> Iterator[bytes]:
    """Encode ``tables`` as chunks of one body (a new IPC stream at each schema change).

    Args:
        tables: The tables, e.g. an importer's raw batches.
        progress: Called with each table's row count once its bytes were handed out.

    Yields:
        Body chunks, about one per table (never an empty chunk).
    """
    sink = io.BytesIO()
    writer: pa.ipc.RecordBatchStreamWriter | None = None
    schema: pa.Schema | None = None
    for table in tables:
        if writer is not None and not table.schema.equals(schema, check_metadata=True):
            writer.close()
            writer = None
        if writer is None:
            writer, schema = pa.ipc.new_stream(sink, table.schema), table.schema
        writer.write_table(table)
        chunk = _drain(sink)
        if chunk:
            yield chunk
        if progress is not None:
            progress(table.num_rows)
    if writer is not None:
        writer.close()
    chunk = _drain(sink)
    if chunk:
        yield chunk


def read_tables(source: pa.NativeFile) -> Iterator[pa.Table]:
    """Every record batch of every IPC stream in ``source``, one table each, in order.

    Raises:
        pyarrow.ArrowInvalid: The body is not a sequence of complete IPC streams.
    """
    size = source.size()
    while source.tell() < size:
        reader = pa.ipc.open_stream(source)
        empty = True
        for batch in reader:
            empty = False
            yield pa.Table.from_batches([batch])
        if empty:
            yield reader.schema.empty_table()


def vectors_table(keys: list[str], vectors: npt.NDArray[np.float32], key: str) -> pa.Table:
    """Keys and an ``(n, d)`` matrix as a table: ``key`` (string), ``vector`` (list<float32>)."""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(keys)
    d = int(matrix.shape[1]) if matrix.ndim == 2 else 0
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * d, pa.int32())
    values = pa.array(matrix.reshape(-1), pa.float32())
    return pa.table(
        {key: pa.array(keys, pa.string()), "vector": pa.ListArray.from_arrays(offsets, values)}
    )


def table_vectors(table: pa.Table) -> npt.NDArray[np.float32]:
    """The ``vector`` column of :func:`vectors_table` as an ``(n, d)`` float32 matrix."""
    n = table.num_rows
    flat = table.column("vector").combine_chunks().flatten()
    values = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32)
    d = len(values) // n if n else 0
    return values.reshape(n, d)


def _drain(sink: io.BytesIO) -> bytes:
    chunk = sink.getvalue()
    sink.seek(0)
    sink.truncate()
    return chunk
