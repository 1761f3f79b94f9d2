"""Run benchmarks and record their results in BENCHMARKS.md.

``python -m benchmarks [NAME ...]`` runs the named benchmarks (:data:`BENCHMARKS`) and
rewrites their sections; without names, the quick default set :data:`DEFAULT` (what
``make bench`` runs). Run benchmarks with nothing else on the machine.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from benchmarks import (
    bench_drift,
    bench_hooks,
    bench_ingest,
    bench_make_run,
    bench_predictor,
    bench_rate,
    bench_routing,
    bench_scaling,
    bench_serving,
    bench_soak,
    bench_store,
    bench_text_features,
    bench_workload,
)
from benchmarks import bench_workflows as workflows_bench
from benchmarks._report import write_section

#: name -> (section title, function returning the Markdown body)
BENCHMARKS: dict[str, tuple[str, Callable[[], str]]] = {
    "predictor": ("predictor", bench_predictor.run),
    "text": ("text-features", bench_text_features.run),
    "alpacaeval": ("alpacaeval", bench_predictor.alpacaeval),
    "workload": ("workload", bench_workload.run),
    "ingest": ("ingest", bench_ingest.run),
    "serving": ("serving", bench_serving.run),
    "store": ("store", bench_store.run),
    "soak": ("soak", bench_soak.run),
    "store-memory": (
        "store-memory",
        lambda: __import__("benchmarks.bench_store_memory").bench_store_memory.run(),
    ),
    "rate": ("rate", bench_rate.run),
    "make-run": ("make-run", bench_make_run.run),
    "routing": ("routing", bench_routing.run),
    "scaling": ("scaling", bench_scaling.run),
    "hooks": ("hooks", bench_hooks.run),
    "workflows": ("workflows", workflows_bench.run),
    "drift": ("drift", bench_drift.run),
    "capacity": ("capacity", lambda: __import__("benchmarks.bench_capacity").bench_capacity.run()),
    "fuzz": ("fuzz", lambda: __import__("benchmarks.bench_fuzz").bench_fuzz.run()),
    "otlp": ("otlp", lambda: __import__("benchmarks.bench_otlp").bench_otlp.run()),
    "folds": ("folds", lambda: __import__("benchmarks.bench_folds").bench_folds.run()),
    "alpaca-folds": (
        "alpaca-folds",
        lambda: __import__("benchmarks.bench_alpaca_folds").bench_alpaca_folds.run(),
    ),
    "conformal": (
        "adaptive-conformal",
        lambda: __import__("benchmarks.bench_conformal").bench_conformal.run(),
    ),
}
DEFAULT = ("ingest", "workload", "predictor", "text")


def main() -> None:
    """Run the benchmarks named on the command line (default: :data:`DEFAULT`)."""
    from pipelines.cli._train import _quiet_training_stack

    _quiet_training_stack()  # Lightning's tips and device lines are not results
    wanted = sys.argv[1:] or list(DEFAULT)
    unknown = sorted(set(wanted) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmarks {unknown}; known: {sorted(BENCHMARKS)}")
    for name in wanted:
        section, run = BENCHMARKS[name]
        body = run()
        print(body)
        write_section(section, f"python -m benchmarks {name}", body)


if __name__ == "__main__":
    main()
