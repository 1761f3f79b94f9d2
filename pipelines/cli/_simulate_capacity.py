"""``tailcast simulate``'s capacity-loss and drift-retraining table.

The figures come from :func:`pipelines.simulate.run` (its ``extra`` keys) when the
request has a loss time or asks for drift retraining.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from pipelines.cli._common import console


def print_table(extra: dict[str, Any]) -> None:
    """The capacity-loss figures as a second table (non-JSON output)."""

    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    table = Table(title="capacity loss and drift retraining")
    cols = ("loss at s", "pre-loss P90 s", "late P90 s", "late / pre", "alarms", "retrains")
    for col in cols:
        table.add_column(col, justify="right")
    table.add_row(
        fmt(extra.get("loss_at_s"), ",.0f"),
        fmt(extra.get("pre_loss_p90"), ".2f"),
        fmt(extra.get("late_p90"), ".2f"),
        fmt(extra.get("late_over_pre"), ".2f"),
        str(extra["alarms"]),
        str(extra["retrains"]),
    )
    console.print(table)
