from __future__ import annotations

import csv
import gzip
import io
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from core.errors import InputError
from feature_store.importers import ERROR, ERROR_FIELD, LINE, MiniSweAgentImporter, detect_format
from feature_store.importers._minisweagent import COLUMNS, NO_LATENCY_FIRST_CALL

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def shared(relative: str) -> Path:
    path = DATA / relative
    assert path.is_file(), f"shared data missing: {path}"
    return path


def source_row(**values: str) -> dict[str, str]:
    row = dict.fromkeys(COLUMNS, "")
    row |= {"run": "r", "instance_id": "task-1", "model": "deepseek-chat", "prompt_tokens": "100"}
    row |= {"completion_tokens": "20", "cached_tokens": "64", "prev_text": "obs"}
    return row | values


def write_calls(path: Path, rows: list[dict[str, str]], header: tuple[str, ...] = COLUMNS) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(gzip.compress(buffer.getvalue().encode()))
    return path


def test_maps_calls_and_rejects_the_first_call_explicitly(tmp_path: Path) -> None:
    rows = [
        source_row(step="0", prev_text="task\nstatement\non lines", call_end_ts="1775815293.7"),
        source_row(step="1", call_start_ts="1775815293.7048812", latency_s="2.628"),
        source_row(step="2", call_start_ts="not-a-time", latency_s="1.0"),
    ]
    path = write_calls(tmp_path / "calls.csv.gz", rows)
    table = pa.concat_tables(MiniSweAgentImporter().read(path))
    first, second, third = table.to_pylist()
    assert [first[LINE], second[LINE], third[LINE]] == [2, 5, 6]
    assert (first[ERROR_FIELD], first[ERROR]) == ("latency_s", NO_LATENCY_FIRST_CALL)
    assert first["prompt"] == "task\nstatement\non lines"
    assert second[ERROR] is None
    assert second["request_id"] == "r/task-1/1"
    assert second["workflow_id"] == "r/task-1"
    assert second["device"] == "deepseek-api"
    assert second["served_model"] == "deepseek-chat"
    assert second["submitted_at"] == datetime(2026, 4, 10, 10, 1, 33, 704881, tzinfo=UTC)
    assert (second["input_tokens"], second["cached_tokens"], second["output_tokens"]) == (
        "100",
        "64",
        "20",
    )
    assert (second["latency_s"], second["step"]) == ("2.628", "1")
    assert third[ERROR_FIELD] == "submitted_at"
    assert "not-a-time" in third[ERROR]
    assert third["submitted_at"] is None


def test_a_different_column_set_is_rejected(tmp_path: Path) -> None:
    header = (*tuple(c for c in COLUMNS if c != "prev_text"), "prompt")
    path = write_calls(tmp_path / "calls.csv.gz", [source_row()], header)
    with pytest.raises(InputError) as caught:
        list(MiniSweAgentImporter().read(path))
    message = str(caught.value)
    assert "unknown column(s): prompt" in message
    assert "missing required column(s): prev_text" in message


@pytest.mark.shared_data
def test_real_calls_file() -> None:
    path = shared("agentic/minisweagent_calls.csv.gz")
    assert detect_format(path) == "minisweagent"
    table = pa.concat_tables(MiniSweAgentImporter().read(path))
    assert table.num_rows == 12_112
    steps = table.column("step").to_pylist()
    errors = table.column(ERROR).to_pylist()
    rejected = [i for i, e in enumerate(errors) if e is not None]
    assert rejected == [i for i, s in enumerate(steps) if s == "0"]
    assert len(rejected) == 149
    assert set(table.column(ERROR_FIELD).drop_null().to_pylist()) == {"latency_s"}
    ids = table.column("request_id").to_pylist()
    assert len(set(ids)) == len(ids)
    assert table.column("submitted_at").null_count == 149
    assert set(table.column("served_model").to_pylist()) == {"deepseek-chat", "deepseek-reasoner"}


@pytest.mark.shared_data
def test_real_calls_start_on_their_lines_and_reads_are_deterministic() -> None:
    path = shared("agentic/minisweagent_calls.csv.gz")
    first = pa.concat_tables(MiniSweAgentImporter().read(path))
    again = pa.concat_tables(MiniSweAgentImporter().read(path, batch_rows=1_000))
    assert first.equals(again)
    physical = gzip.decompress(path.read_bytes()).decode().split("\n")
    assert len(physical) > 2 * first.num_rows  # prev_text spans lines
    for line, request_id in zip(
        first.column(LINE).to_pylist(), first.column("request_id").to_pylist(), strict=True
    ):
        run, instance, _step = request_id.split("/")
        assert physical[line - 1].startswith(f"{run},{instance},"), (line, request_id)
