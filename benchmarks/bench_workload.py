"""Demo workload generation speed (issue bar: 100,000 records in under 10 s)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from feature_store.workload import WorkloadConfig, generate_workload, write_workload

REPEATS = 3


def run(records: int = 100_000) -> str:
    """Time generation and writing; return the Markdown body for BENCHMARKS.md."""
    gen: list[float] = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        table = generate_workload(WorkloadConfig(seed=0, n_records=records))
        gen.append(time.perf_counter() - started)
    rows = [
        f"| generate | {statistics.median(gen):.3f} | {records / statistics.median(gen):,.0f} |"
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".parquet", ".jsonl", ".csv"):
            path = Path(tmp) / f"workload{suffix}"
            started = time.perf_counter()
            write_workload(table, path)
            secs = time.perf_counter() - started
            rows.append(f"| write {suffix} | {secs:.3f} | {records / secs:,.0f} |")
    return (
        f"{records:,} records, seed 0, median of {REPEATS} generations. "
        "Bar: under 10 s for 100,000 records.\n\n"
        "| step | seconds | records/s |\n|---|---:|---:|\n" + "\n".join(rows) + "\n"
    )
