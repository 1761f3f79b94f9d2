"""The feature store's two backends, side by side: embedded DuckDB and PostgreSQL.

Measures, in one run on one machine, for each backend:

* **ingest** — the demo workload's generic CSV (:data:`INGEST_RECORDS` records, every
  field, prompts included) through ``ingest_batches`` into a fresh store: records/s;
* **frame** — :data:`FRAME_RECORDS` records stored, then the point-in-time training frame
  of one served model and of all of them (``training_frame``): seconds;
* **forecast** — the real ``tailcast serve`` on each backend with the same champion,
  open-loop single forecasts at :data:`SERVING_RPS` req/s (the serving benchmark's load
  generator): p99 ms, and its ratio PostgreSQL / DuckDB.

PostgreSQL is the server on 127.0.0.1:5432 (user postgres); each measurement uses a
fresh database, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import bench_serving as serving

INGEST_RECORDS = 200_000
FRAME_RECORDS = 1_000_000
SERVING_RPS = 500
SERVING_S = 10.0
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database URL (dropped afterwards)."""
    import psycopg

    name = f"tailcast_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def backend(kind: str, work: Path) -> Iterator[Any]:
    """An open, empty store of ``kind`` (``duckdb`` or ``postgres``)."""
    from core import Settings
    from feature_store import open_store

    if kind == "duckdb":
        path = work / f"{uuid.uuid4().hex[:8]}.duckdb"
        with open_store(path) as store:
            yield store
        path.unlink(missing_ok=True)
        Path(f"{path}.wal").unlink(missing_ok=True)
        return
    with pg_database() as url, open_store(Settings(home=work, store_url=url)) as store:
        yield store


def _workload(work: Path, records: int) -> Path:
    from feature_store.workload import WorkloadConfig, generate_workload, write_workload

    path = work / f"workload-{records}.csv"
    if not path.exists():
        write_workload(generate_workload(WorkloadConfig(seed=0, n_records=records)), path)
    return path


def measure_ingest(kind: str, work: Path, csv_path: Path) -> dict[str, float]:
    """Seconds and records/s of one ingest into a fresh store, and a re-ingest."""
    from feature_store.importers import get_importer

    with backend(kind, work) as store:
        started = time.perf_counter()
        report = store.ingest_batches(get_importer("csv").read(csv_path))
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        again = store.ingest_batches(get_importer("csv").read(csv_path))
        reingest = time.perf_counter() - started
    return {
        "accepted": report.accepted,
        "seconds": seconds,
        "rate": report.accepted / seconds,
        "reingest_duplicates": again.duplicates,
        "reingest_seconds": reingest,
    }


def measure_frames(kind: str, work: Path, csv_path: Path) -> dict[str, float]:
    """Seconds to build the training frame of one served model and of all, 1M records."""
    from feature_store.importers import get_importer

    with backend(kind, work) as store:
        store.ingest_batches(get_importer("csv").read(csv_path))
        models = [g.served_model for g in store.stats().groups]
        one = max(set(models), key=models.count)
        started = time.perf_counter()
        all_rows = store.training_frame().num_rows
        all_s = time.perf_counter() - started
        started = time.perf_counter()
        one_rows = store.training_frame(one).num_rows
        one_s = time.perf_counter() - started
    return {"all_rows": all_rows, "all_s": all_s, "one_rows": one_rows, "one_s": one_s}


def measure_forecasts(home: Path, store_url: str | None) -> dict[str, Any]:
    """p99 of open-loop single forecasts from ``tailcast serve`` on one backend."""
    log = home / f"serve-{'pg' if store_url else 'duckdb'}.log"
    extra = {"TAILCAST_STORE_URL": store_url} if store_url else None
    proc, port = serving.start_service(home, log, 3600, extra)
    base = f"http://127.0.0.1:{port}"
    try:
        serving._wait_ready(base, proc, log)
        cfg = {
            "host": "127.0.0.1",
            "port": port,
            "items": _items(home),
            "phases": ["single"],
            "rps": SERVING_RPS,
            "duration_s": SERVING_S,
            "connections": serving.CONNECTIONS,
            "swap_at_s": SERVING_S,
            "token": serving.TOKEN,
            "bulk_items": serving.BULK_ITEMS,
            "bulk_connections": serving.BULK_CONNECTIONS,
            "server_pid": proc.pid,
        }
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks._serving_loadgen"],
            input=json.dumps(cfg).encode(),
            capture_output=True,
            timeout=SERVING_S * 6 + 120,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"load generator failed:\n{out.stderr.decode()[-4000:]}")
        single = json.loads(out.stdout)["single"]
        return {
            "p50_ms": serving._quantile(single["lat"], 0.5) * 1e3,
            "p99_ms": serving._quantile(single["lat"], 0.99) * 1e3,
            "answered": len(single["lat"]),
            "errors": single["errors"],
        }
    finally:
        serving._stop(proc)


def _items(home: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((home / "items.json").read_text())
    return items


def _prepare_serving(home: Path) -> None:
    """A trained champion in ``home`` (DuckDB store) and the items to send."""
    items = serving._prepare(home)
    (home / "items.json").write_text(json.dumps(items))


def _copy_records(home: Path, url: str) -> int:
    """Copy the home's DuckDB records into the PostgreSQL store at ``url``."""
    from core import Settings
    from feature_store import open_store
    from feature_store.importers import get_importer

    demo = home / "workload.parquet"
    with open_store(Settings(home=home, store_url=url)) as store:
        return store.ingest_batches(get_importer("parquet").read(demo), judge=False).accepted


def run() -> str:
    """Run the benchmark; return the Markdown body for BENCHMARKS.md."""
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv_small = _workload(work, INGEST_RECORDS)
        for kind in ("duckdb", "postgres"):
            rows[kind] = {"ingest": measure_ingest(kind, work, csv_small)}
        csv_big = _workload(work, FRAME_RECORDS)
        for kind in ("duckdb", "postgres"):
            rows[kind]["frame"] = measure_frames(kind, work, csv_big)
        csv_big.unlink()
        home = work / "home"
        _prepare_serving(home)
        rows["duckdb"]["serve"] = measure_forecasts(home, None)
        with pg_database() as url:
            _copy_records(home, url)
            rows["postgres"]["serve"] = measure_forecasts(home, url)
    return _report(rows)


def _report(rows: dict[str, dict[str, Any]]) -> str:
    load = os.getloadavg()[0]
    d, p = rows["duckdb"], rows["postgres"]
    p99_ratio = p["serve"]["p99_ms"] / d["serve"]["p99_ms"]
    lines = [
        f"Load average at the end: {load:.2f}. Fresh store per measurement; PostgreSQL 15 on "
        "127.0.0.1 (same machine, same 2 cores).",
        "",
        "Bars: ingest into PostgreSQL >= 30,000 records/s; forecast p99 at "
        f"{SERVING_RPS} req/s on PostgreSQL within 20% of DuckDB's; frame load of "
        f"{FRAME_RECORDS:,} records in seconds for each backend.",
        "",
        "| measure | DuckDB | PostgreSQL | PostgreSQL / DuckDB |",
        "|---|---:|---:|---:|",
    ]

    def row(name: str, a: float, b: float, fmt: str) -> None:
        lines.append(f"| {name} | {a:{fmt}} | {b:{fmt}} | {b / a:.2f} |")

    row(
        f"ingest {INGEST_RECORDS:,} records, records/s",
        d["ingest"]["rate"],
        p["ingest"]["rate"],
        ",.0f",
    )
    row(
        "re-ingest (all duplicates), s",
        d["ingest"]["reingest_seconds"],
        p["ingest"]["reingest_seconds"],
        ".2f",
    )
    row(
        f"training frame, all {d['frame']['all_rows']:,} rows, s",
        d["frame"]["all_s"],
        p["frame"]["all_s"],
        ".2f",
    )
    row(
        f"training frame, one served model ({d['frame']['one_rows']:,} rows), s",
        d["frame"]["one_s"],
        p["frame"]["one_s"],
        ".2f",
    )
    row(
        f"forecast p50 at {SERVING_RPS} req/s, ms",
        d["serve"]["p50_ms"],
        p["serve"]["p50_ms"],
        ".2f",
    )
    row(
        f"forecast p99 at {SERVING_RPS} req/s, ms",
        d["serve"]["p99_ms"],
        p["serve"]["p99_ms"],
        ".2f",
    )
    lines += [
        "",
        f"- ingest into PostgreSQL: {p['ingest']['rate']:,.0f} records/s "
        f"({'met' if p['ingest']['rate'] >= 30_000 else 'NOT met'}); re-ingest stored "
        f"{p['ingest']['reingest_duplicates']:,} duplicates and nothing new.",
        f"- forecast p99 PostgreSQL / DuckDB = {p99_ratio:.2f} "
        f"({'met' if p99_ratio <= 1.2 else 'NOT met'}); errors: DuckDB "
        f"{d['serve'].get('errors', 0)}, PostgreSQL {p['serve'].get('errors', 0)}.",
    ]
    return "\n".join(lines)
