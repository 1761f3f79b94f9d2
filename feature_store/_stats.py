"""Store summaries for ``tailcast store stats`` and the API, from either backend's SQL.

:func:`summarize` runs the counting queries through a backend's ``fetch`` and builds
the :class:`StoreStats`; each backend gives only its dialect's per-group quantile and
per-encoder queries (:func:`store_stats` is the DuckDB store's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import duckdb

from feature_store._base import GroupStats, StoreStats

#: Rows of a query, fetched by a backend.
Fetch = Callable[[str], Sequence[Sequence[Any]]]

_GROUPS = (
    "SELECT served_model, device, count(*), count(latency_s), min(submitted_at), "
    "max(submitted_at), quantile_cont(latency_s, 0.5), quantile_cont(latency_s, 0.9), "
    "quantile_cont(latency_s, 0.99) FROM records GROUP BY ALL ORDER BY 1, 2"
)
_EMBEDDINGS = "SELECT encoder_id, count(*) FROM embeddings GROUP BY 1 ORDER BY 1"


def store_stats(cur: duckdb.DuckDBPyConnection, path: str) -> StoreStats:
    """Summarize the DuckDB store through a reader cursor."""
    return summarize(path, lambda sql: cur.execute(sql).fetchall(), _GROUPS, _EMBEDDINGS)


def summarize(path: str, fetch: Fetch, groups_sql: str, embeddings_sql: str) -> StoreStats:
    """Summarize a store; every query runs through ``fetch`` (one snapshot, ideally).

    Args:
        path: Where the store is, as shown to users (no password).
        fetch: Runs one query and returns its rows.
        groups_sql: Per (served_model, device), ordered by them: served_model, device,
            count(*), count(latency_s), min and max submitted_at, and the 0.5, 0.9 and
            0.99 quantiles of latency_s.
        embeddings_sql: encoder_id and count(*) per encoder.
    """

    def one(sql: str) -> int:
        rows = fetch(sql)
        return int(rows[0][0]) if rows else 0

    groups = fetch(groups_sql)
    embeddings = fetch(embeddings_sql)
    return StoreStats(
        path=path,
        records=one("SELECT count(*) FROM records"),
        prompts=one("SELECT count(*) FROM prompts"),
        embeddings={str(k): int(v) for k, v in embeddings},
        groups=tuple(
            GroupStats(
                served_model=g[0],
                device=g[1],
                records=g[2],
                with_latency=g[3],
                first_submitted=g[4],
                last_submitted=g[5],
                latency_p50_s=g[6],
                latency_p90_s=g[7],
                latency_p99_s=g[8],
            )
            for g in groups
        ),
        ingests=one("SELECT count(*) FROM ingest_log"),
    )
