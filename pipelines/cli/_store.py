"""``tailcast store …``: inspect the feature store."""

from __future__ import annotations

import typer
from rich.table import Table

from core import StoreError
from pipelines.cli._common import JsonOption, StoreOption, console, fail, open_cli_store, print_json

app = typer.Typer(rich_markup_mode=None, help="Inspect the feature store.", no_args_is_help=True)


@app.command("stats")
def stats(store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Summarize the store: records per served model and device, latency quantiles."""
    db = open_cli_store(store)
    try:
        summary = db.stats()
    except StoreError as exc:
        fail(exc)
    finally:
        db.close()
    if as_json:
        print_json(summary.model_dump(mode="json"))
        return
    print_stats(summary)


def print_stats(summary: object) -> None:
    """Render :class:`feature_store.StoreStats` as a rich table."""
    from feature_store import StoreStats

    assert isinstance(summary, StoreStats)
    table = Table(title=f"feature store {summary.path}")
    for col in ("served model", "device", "records", "with latency", "p50 s", "p90 s", "p99 s"):
        text = col in ("served model", "device")
        table.add_column(col, justify="left" if text else "right", no_wrap=text)

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    for g in summary.groups:
        table.add_row(
            g.served_model,
            g.device,
            f"{g.records:,}",
            f"{g.with_latency:,}",
            fmt(g.latency_p50_s),
            fmt(g.latency_p90_s),
            fmt(g.latency_p99_s),
        )
    console.print(table)
    emb = ", ".join(f"{k}: {v:,}" for k, v in summary.embeddings.items()) or "none"
    console.print(
        f"{summary.records:,} records, {summary.prompts:,} distinct prompts, "
        f"embeddings {emb}, {summary.ingests:,} ingests"
    )
