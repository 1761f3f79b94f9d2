"""Run every benchmark and record the results in BENCHMARKS.md."""

from __future__ import annotations

import sys

from benchmarks import bench_ingest, bench_predictor, bench_text_features, bench_workload
from benchmarks._report import write_section


def main() -> None:
    """Run the benchmarks named on the command line (default: all)."""
    wanted = set(sys.argv[1:]) or {"ingest", "workload", "predictor", "text"}
    if "predictor" in wanted:
        body = bench_predictor.run()
        print(body)
        write_section("predictor", "make bench (python -m benchmarks predictor)", body)
    if "text" in wanted:
        body = bench_text_features.run()
        print(body)
        write_section("text-features", "python -m benchmarks text", body)
    if "alpacaeval" in wanted:
        body = bench_predictor.alpacaeval()
        print(body)
        write_section("alpacaeval", "python -m benchmarks alpacaeval", body)
    if "workload" in wanted:
        body = bench_workload.run()
        print(body)
        write_section("workload", "make bench", body)
    if "ingest" in wanted:
        body = bench_ingest.run()
        print(body)
        write_section("ingest", "make bench", body)


if __name__ == "__main__":
    main()
