"""Store summaries for ``tailcast store stats`` and the API."""

from __future__ import annotations

import duckdb

from feature_store._base import GroupStats, StoreStats


def store_stats(cur: duckdb.DuckDBPyConnection, path: str) -> StoreStats:
    """Summarize the store through a reader cursor."""

    def one(sql: str) -> int:
        row = cur.execute(sql).fetchone()
        return int(row[0]) if row else 0

    groups = cur.execute(
        "SELECT served_model, device, count(*), count(latency_s), min(submitted_at), "
        "max(submitted_at), quantile_cont(latency_s, 0.5), quantile_cont(latency_s, 0.9), "
        "quantile_cont(latency_s, 0.99) FROM records GROUP BY ALL ORDER BY 1, 2"
    ).fetchall()
    embeddings = dict(
        cur.execute("SELECT encoder_id, count(*) FROM embeddings GROUP BY 1 ORDER BY 1").fetchall()
    )
    return StoreStats(
        path=path,
        records=one("SELECT count(*) FROM records"),
        prompts=one("SELECT count(*) FROM prompts"),
        embeddings={str(k): int(v) for k, v in embeddings.items()},
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
