"""`tailcast ingest` / `store stats` end to end, through the real console script."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # mypy maps tests/pipelines/*.py to top-level modules (no __init__.py)
    from _cli import tailcast
else:
    from tests.pipelines._cli import tailcast

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"

HEADER = "request_id,served_model,device,submitted_at,prompt,latency_s,output_tokens\n"
GOOD = [
    'a1,m,h100,2024-01-01T00:00:00Z,"a prompt\nover two lines",1.5,10\n',
    "a2,m,h100,2024-01-01T00:00:05Z,,2.5,20\n",
    "a3,m,h100,1704067210,short,0.5,3\n",
]


def ingest_json(path: Path, home: Path, *extra: str) -> dict[str, Any]:
    out = tailcast("ingest", str(path), "--json", *extra, home=home)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_bad_rows_are_named_and_good_rows_kept(tmp_path: Path) -> None:
    src = tmp_path / "calls.csv"
    src.write_text(
        HEADER
        + GOOD[0]
        + "b1,m,h100,2024-01-01T00:00:01Z,x,-1,10\n"  # line 4: negative latency
        + GOOD[1]
        + "b2,m,h100,2024-01-01T00:00:02Z,x,1.0\n"  # line 6: a field short
        + GOOD[2]
        + "b3,m,h100,not-a-time,x,1.0,5\n"  # line 8
    )
    first = ingest_json(src, tmp_path)
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (3, 0, 3)
    located = [(e["line"], e["field"]) for e in first["errors"]]
    assert located == [(4, "latency_s"), (6, None), (8, "submitted_at")]
    assert first["errors"][0]["message"] == (f"{src}:4: field 'latency_s': must be > 0 (got -1.0)")
    again = ingest_json(src, tmp_path)
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 3, 3)


def test_truncated_gzip_fails_before_writing(tmp_path: Path) -> None:
    body = (HEADER + "".join(GOOD) * 2000).encode()
    blob = gzip.compress(body)
    src = tmp_path / "calls.csv.gz"
    src.write_bytes(blob[: len(blob) * 2 // 3])
    out = tailcast("ingest", str(src), home=tmp_path)
    assert out.returncode == 2
    assert str(src) in out.stderr
    stats = json.loads(tailcast("store", "stats", "--json", home=tmp_path).stdout)
    assert stats["records"] == 0


def test_unknown_columns_fail_with_their_names(tmp_path: Path) -> None:
    src = tmp_path / "calls.csv"
    src.write_text(HEADER.replace("latency_s", "latency") + "a,m,d,2024-01-01T00:00:00Z,,1,1\n")
    out = tailcast("ingest", str(src), home=tmp_path)
    assert out.returncode == 2
    assert "latency" in out.stderr
    assert str(src) in out.stderr


def test_human_summary_and_stats(tmp_path: Path) -> None:
    src = tmp_path / "calls.csv"
    src.write_text(HEADER + "".join(GOOD))
    out = tailcast("ingest", str(src), home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "accepted" in out.stderr
    stats = json.loads(tailcast("store", "stats", "--json", home=tmp_path).stdout)
    assert stats["records"] == 3
    assert stats["prompts"] == 2
    (group,) = stats["groups"]
    assert (group["served_model"], group["device"], group["with_latency"]) == ("m", "h100", 3)


@pytest.mark.shared_data
@pytest.mark.slow
def test_minisweagent_every_row_accounted_for_and_rerun_adds_nothing(tmp_path: Path) -> None:
    src = SHARED / "agentic" / "minisweagent_calls.csv.gz"
    assert src.exists(), f"shared data missing: {src}"
    first = ingest_json(src, tmp_path)
    assert first["accepted"] + first["duplicates"] + first["rejected"] == 12_112
    assert first["accepted"] > 11_000
    # Rows without a latency (the first call of each task run) are rejected explicitly.
    reasons = {(e["field"], e["reason"]) for e in first["errors"]}
    assert (
        "latency_s",
        "no latency in the source (first call of a task has no start time)",
    ) in reasons
    again = ingest_json(src, tmp_path)
    assert again["accepted"] == 0
    assert again["duplicates"] == first["accepted"]
    assert again["rejected"] == first["rejected"]
