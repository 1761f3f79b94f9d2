"""Which keys of a batch a DuckDB table already holds: inserts without ``ON CONFLICT``.

DuckDB (2.0) keeps about a kilobyte of native memory per ``INSERT ... ON CONFLICT``
statement that it never returns (upstream duckdb/duckdb#25162 reports the same growth
for upserts), while a plain insert after an index lookup keeps none; a service storing
one completion per request crept with every one of them. The DuckDB store
therefore asks which keys exist (:func:`stored_keys`, under its write lock, so no other
writer can add one in between) and inserts the others with a plain ``INSERT``; the
primary keys still guard the tables. See ``docs/decisions/2026-12-07-duckdb-upsert-memory.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

#: Largest key set looked up with a constant ``IN`` list (an index lookup per key);
#: larger sets (bulk ingests) are joined against the table instead.
LOOKUP_MAX = 256


def stored_keys(
    con: duckdb.DuckDBPyConnection, table: str, column: str, keys: Sequence[str]
) -> list[str]:
    """The subset of ``keys`` that ``table.column`` already holds (any order).

    Args:
        con: A connection inside the writer's transaction.
        table: A table whose ``column`` is its primary key (a trusted identifier).
        column: The key column (a trusted identifier).
        keys: Distinct candidate keys.
    """
    if not keys:
        return []
    if len(keys) <= LOOKUP_MAX:
        marks = ", ".join("?" for _ in keys)
        sql = f"SELECT {column} FROM {table} WHERE {column} IN ({marks})"
        return [str(k) for (k,) in con.execute(sql, list(keys)).fetchall()]
    con.register("_candidates", pa.table({"k": pa.array(keys, pa.string())}))
    try:
        sql = f"SELECT t.{column} FROM {table} t JOIN _candidates c ON t.{column} = c.k"
        return [str(k) for (k,) in con.execute(sql).fetchall()]
    finally:
        con.unregister("_candidates")
