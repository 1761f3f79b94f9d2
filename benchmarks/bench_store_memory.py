"""Native memory of a DuckDB store under a service's stream of small writes.

Each setting runs in a fresh process on a copy of one store holding the demo workload
(:data:`BASE_RECORDS` records): :data:`STEPS` steps of what a service does per
completion call and judge pass (ingest :data:`ROWS_PER_INGEST` new records, take the
drift inbox, save a drift state acknowledging what was taken: two write transactions
per step), reading glibc's bytes in use (``mallinfo2``: DuckDB's own allocations other
than its buffer pool) and the process's RSS every :data:`EVERY` steps. Settings: the
store reopening its file every :data:`feature_store.REOPEN_AFTER` write
transactions (the default) and never (``reopen_after=None``).

Run: ``python -m benchmarks store-memory``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._soak_loadgen import rss_mb
from feature_store import REOPEN_AFTER

BASE_RECORDS = 20_000
STEPS = 2_400
EVERY = 400
ROWS_PER_INGEST = 3
#: Label -> ``reopen_after`` of the store (``None``: never).
SETTINGS: dict[str, int | None] = {"reopen (default)": REOPEN_AFTER, "never reopen": None}


def _mallinfo_mib() -> float:
    """glibc's bytes in use (arena plus mmapped chunks), MiB."""
    import ctypes

    fields = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in fields.split()]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return float(info.uordblks + info.hblkhd) / 2**20


def worker(path: str, reopen_after: int | None) -> list[dict[str, float]]:
    """The stream on the store at ``path``; readings every :data:`EVERY` steps."""
    from feature_store import DuckDBStore
    from feature_store.workload import WorkloadConfig, generate_workload

    table = generate_workload(WorkloadConfig(seed=1, n_records=3_000))
    rows = [
        {k: v for k, v in r.items() if v is not None and k != "request_id"}
        for r in table.to_pylist()
    ]
    out = []
    with DuckDBStore(path, reopen_after=reopen_after) as store:
        for step in range(STEPS + 1):
            if step % EVERY == 0:
                rss = rss_mb(os.getpid()) or float("nan")
                out.append({"step": step, "glibc": _mallinfo_mib(), "rss": rss})
            batch = [
                dict(rows[(ROWS_PER_INGEST * step + j) % len(rows)], request_id=f"m{step}-{j}")
                for j in range(ROWS_PER_INGEST)
            ]
            store.ingest_rows(batch, source="api")
            taken = store.drift_inbox_take(100).column("request_id").to_pylist()
            store.save_drift_state({"group": json.dumps({"step": step})}, ack=taken)
    return out


def _base_store(directory: Path) -> Path:
    from feature_store import DuckDBStore
    from feature_store.importers import get_importer
    from feature_store.workload import WorkloadConfig, generate_workload, write_workload

    demo = directory / "demo.parquet"
    write_workload(generate_workload(WorkloadConfig(seed=0, n_records=BASE_RECORDS)), demo)
    path = directory / "base.duckdb"
    with DuckDBStore(path) as store:
        store.ingest_batches(get_importer("parquet").read(demo), judge=False)
    return path


def run() -> str:
    """Both settings, one after the other; the Markdown body for BENCHMARKS.md."""
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = _base_store(Path(tmp))
        for label, reopen_after in SETTINGS.items():
            copy = Path(tmp) / "copy.duckdb"
            shutil.copy(base, copy)
            print(f"store-memory: {label}", file=sys.stderr, flush=True)
            out = subprocess.run(
                [sys.executable, "-m", __name__, str(copy), str(reopen_after)],
                capture_output=True,
                check=True,
            )
            results[label] = json.loads(out.stdout)
            copy.unlink()
    return report(results)


def report(results: dict[str, list[dict[str, float]]]) -> str:
    """Readings per setting and the growth ratio."""
    labels = list(results)
    lines = [
        f"A store of {BASE_RECORDS:,} demo records; {STEPS:,} steps of a service's stream "
        f"(ingest {ROWS_PER_INGEST} new records, take the drift inbox, save a drift state "
        "with the acknowledgement: two write transactions), each setting in a fresh "
        f"process. glibc bytes in use and RSS, MiB. Load average at the end: "
        f"{os.getloadavg()[0]:.2f}.",
        "",
        "| step | " + " | ".join(f"{lb}: glibc | {lb}: RSS" for lb in labels) + " |",
        "|---:|" + "---:|---:|" * len(labels),
    ]
    for i, first in enumerate(results[labels[0]]):
        cells = [f"{results[lb][i]['glibc']:.1f} | {results[lb][i]['rss']:.1f}" for lb in labels]
        lines.append(f"| {int(first['step']):,} | " + " | ".join(cells) + " |")
    growth = {lb: r[-1]["glibc"] - r[1]["glibc"] for lb, r in results.items()}
    lines += [
        "",
        *(
            f"- {lb}: glibc in use grew **{g:+.1f} MiB** from step {EVERY} to {STEPS}"
            for lb, g in growth.items()
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    every = None if sys.argv[2] == "None" else int(sys.argv[2])
    json.dump(worker(sys.argv[1], every), sys.stdout)
