"""Schema-driven fuzzing at scale: >= 5,000 schemathesis requests, no answer 5xx.

The same harness as ``tests/serving/test_fuzz.py`` (a real service on loopback, every
operation of its OpenAPI document, positive and negative inputs, the API token sent,
derandomized) with a larger budget. Reports requests per operation and per status,
and every failing answer (5xx, undocumented status, off-schema body or content type).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _fuzz import Budget, FuzzResult, fuzz, report, served
else:
    from tests.serving._fuzz import Budget, FuzzResult, fuzz, report, served

BUDGET = Budget(positive=120, negative=70, pinned=40)
BAR = 5000


def run(budget: Budget = BUDGET, bar: int = BAR) -> str:
    """Fuzz the service within ``budget``; the Markdown section (counts, failures)."""
    with (
        tempfile.TemporaryDirectory(prefix="tailcast-fuzz-") as tmp,
        served(Path(tmp)) as (url, document),
    ):
        result = fuzz(url, document, budget, progress=_progress)
    return _markdown(result, budget, bar)


def _progress(operation: str, requests: int) -> None:
    print(f"{operation}: {requests} requests", flush=True)


def _markdown(result: FuzzResult, budget: Budget, bar: int) -> str:
    met = result.total >= bar and result.server_errors() == 0 and not result.failures
    by_status: Counter[int] = Counter()
    for (_, status), n in result.statuses.items():
        by_status[status] += n
    lines = [
        f"Bar: >= {bar:,} generated requests across every operation, 0 answers 5xx: "
        f"**{'met' if met else 'not met'}**.",
        "",
        f"- requests: {result.total:,} over {len(result.requests)} operations in "
        f"{result.seconds:.1f} s ({result.total / max(result.seconds, 1e-9):.0f}/s)",
        f"- budget per operation: {budget.positive} positive, {budget.negative} negative, "
        f"{budget.pinned} with `served_model` pinned to a loaded champion (examples)",
        f"- answers 5xx: {result.server_errors()}; failing answers (any check): "
        f"{len(result.failures)}",
        f"- no schema-violating input exists for: {', '.join(result.no_negative) or 'none'}",
        "",
        "| status | requests |",
        "|---|---|",
        *(f"| {status} | {n:,} |" for status, n in sorted(by_status.items())),
        "",
        "| operation | requests | statuses |",
        "|---|---|---|",
    ]
    for operation, n in sorted(result.requests.items()):
        statuses = sorted((s, c) for (op, s), c in result.statuses.items() if op == operation)
        lines.append(f"| `{operation}` | {n:,} | {', '.join(f'{s}: {c}' for s, c in statuses)} |")
    if result.failures:
        lines += ["", "```", report(result), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run(Budget(positive=2, negative=1, pinned=1), bar=1))
