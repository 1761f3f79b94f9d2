"""Per-span cost of each stage of ``POST /v1/traces``, in process (no HTTP, no server).

Usage::

    .venv/bin/python scripts/profile_otlp_ingest.py [--spans 1000] [--rounds 7]
        [--path fast|generic|both] [--cprofile]

Builds ``--rounds`` protobuf ``ExportTraceServiceRequest`` bodies of ``--spans``
vLLM-shaped spans each (the benchmark's spans, real SDK and encoder, new request ids
per round) and runs each through the route's stages into one temporary DuckDB store:

* **decode**: protobuf -> span views (``serving.otlp._decode.decode_protobuf``);
* **rows**: views -> the batch the route submits (``serving.otlp.span_rows``);
* **table**: the batch -> the raw Arrow batch the store validates (``fast``: typed
  columns, :func:`feature_store.columns_table`; ``generic``: one dict per span through
  the untrusted-rows path the store's ``ingest_rows`` takes);
* **ingest**: :meth:`feature_store.RecordStore.ingest_batches` of that batch (staging
  SQL, insert, drift inbox, commit).

Prints the median over rounds of each stage in microseconds per span, plus the fixed
cost of a one-span ingest. ``--cprofile`` prints the top functions of the whole path.
Not a benchmark (see ``benchmarks/bench_otlp.py``): a profile of where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_otlp import encode, make_spans
from feature_store import DuckDBStore
from serving.otlp import OtlpMapping, span_rows
from serving.otlp._decode import decode_protobuf

STAGES = ("decode", "rows", "table", "ingest")


def _tables(path: str) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(fast, generic) builders: a :class:`SpanBatch` -> the raw Arrow batch."""
    from feature_store._rows import rows_table

    def generic(batch: Any) -> Any:
        return rows_table(batch.rows)

    try:
        from feature_store import columns_table
    except ImportError:  # before the typed path existed
        return generic, generic

    def fast(batch: Any) -> Any:
        return columns_table(batch.columns())

    return fast, generic


def run(spans: int, rounds: int, path: str, profile: cProfile.Profile | None) -> None:
    """Time the stages (see the module docstring) and print µs per span."""
    mapping = OtlpMapping()
    wanted = mapping.wanted()
    fast, generic = _tables(path)
    paths = {"fast": fast, "generic": generic}
    chosen = list(paths) if path == "both" else [path]
    bodies = {
        (p, k): encode(make_spans((len(chosen) * k + i) * spans, spans), spans)[0]
        for k in range(rounds)
        for i, p in enumerate(chosen)
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp) / "store.duckdb")
        warm = span_rows(decode_protobuf(encode(make_spans(2 * 10**8, 1), 1)[0], wanted), mapping)
        store.ingest_batches([generic(warm)], "warm-up")
        for p in chosen:
            times: dict[str, list[float]] = {s: [] for s in STAGES}
            for k in range(rounds):
                if profile is not None:
                    profile.enable()
                t0 = time.perf_counter()
                views = decode_protobuf(bodies[(p, k)], wanted)
                t1 = time.perf_counter()
                batch = span_rows(views, mapping)
                t2 = time.perf_counter()
                table = paths[p](batch)
                t3 = time.perf_counter()
                report = store.ingest_batches([table], "otlp")
                t4 = time.perf_counter()
                if profile is not None:
                    profile.disable()
                assert report.accepted == spans, report
                for stage, (a, b) in zip(
                    STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4)), strict=True
                ):
                    times[stage].append((b - a) / spans * 1e6)
            medians = {s: statistics.median(v) for s, v in times.items()}
            cells = "  ".join(f"{s} {medians[s]:6.2f}" for s in STAGES)
            print(f"{p:8s} µs/span: {cells}  total {sum(medians.values()):6.2f}")
        one = []
        for k in range(rounds):
            view = decode_protobuf(encode(make_spans(10**8 + k, 1), 1)[0], wanted)
            table = paths[chosen[0]](span_rows(view, mapping))
            t0 = time.perf_counter()
            store.ingest_batches([table], "otlp")
            one.append((time.perf_counter() - t0) * 1e3)
        print(f"one-span ingest: {statistics.median(one):.1f} ms")
        store.close()


def main() -> None:
    """Parse the options and run the profile."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--path", choices=("fast", "generic", "both"), default="both")
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    profile = cProfile.Profile() if args.cprofile else None
    run(args.spans, args.rounds, args.path, profile)
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
