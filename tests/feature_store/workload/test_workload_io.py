"""write_workload: every format round-trips; JSON escaping; errors; speed."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

from core import CompletionRecord
from feature_store.workload import (
    FORMATS,
    WORKLOAD_SCHEMA,
    WorkloadConfig,
    generate_workload,
    write_workload,
)

STRING_TIME = pa.schema(
    [f.with_type(pa.string()) if f.name == "submitted_at" else f for f in WORKLOAD_SCHEMA]
)


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return generate_workload(WorkloadConfig(seed=5, n_records=3000))


def read_back(path: Path) -> pa.Table:
    """Read a written file with plain pyarrow readers, typed like WORKLOAD_SCHEMA."""
    name = path.name
    if name.endswith(".parquet"):
        return pq.read_table(path)
    if ".jsonl" in name:
        options = pajson.ParseOptions(explicit_schema=STRING_TIME)
        back = pajson.read_json(path, parse_options=options)
    else:
        types = {f.name: f.type for f in STRING_TIME}
        back = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    back = back.select(WORKLOAD_SCHEMA.names)
    return back.set_column(
        3, "submitted_at", back.column("submitted_at").cast(pa.timestamp("us", tz="UTC"))
    ).cast(WORKLOAD_SCHEMA)


@pytest.mark.parametrize("ext", FORMATS)
def test_round_trip(table: pa.Table, tmp_path: Path, ext: str) -> None:
    path = write_workload(table, tmp_path / f"w{ext}")
    assert path == tmp_path / f"w{ext}"
    assert read_back(path).equals(table)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


@pytest.mark.parametrize("ext", [".csv.gz", ".jsonl.gz"])
def test_gz_files_are_gzip(table: pa.Table, tmp_path: Path, ext: str) -> None:
    path = write_workload(table, tmp_path / f"w{ext}")
    with gzip.open(path, "rt") as fh:
        assert fh.readline().startswith(("request_id", '"request_id"', '{"request_id"'))


def test_text_formats_use_iso_utc_timestamps(table: pa.Table, tmp_path: Path) -> None:
    first = table.column("submitted_at")[0].as_py()
    line = write_workload(table, tmp_path / "w.jsonl").read_text().splitlines()[0]
    obj = json.loads(line)
    assert obj["submitted_at"] == first.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert list(obj) == WORKLOAD_SCHEMA.names
    assert CompletionRecord.model_validate(obj).submitted_at == first
    csv_rows = write_workload(table, tmp_path / "w.csv").read_text().splitlines()
    assert csv_rows[0].replace('"', "").split(",") == WORKLOAD_SCHEMA.names
    assert first.strftime("%Y-%m-%dT%H:%M:%S.%fZ") in csv_rows[1]


def test_json_escaping_and_nulls(tmp_path: Path) -> None:
    prompts = ['say "hi"', "back\\slash", "two\nlines\tand\r", "bell\x07 nul\x00", "naïve ✓", None]
    n = len(prompts)
    t = pa.table(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "served_model": ["m"] * n,
            "device": ["h100"] * n,
            "submitted_at": pa.array(
                [datetime(2025, 1, 1, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC")
            ),
            "prompt": prompts,
            "latency_s": [0.1, 1 / 3, 1e-7, 2.0, float("nan"), None],
            "step": pa.array([0, 1, 2, None, 4, 5], pa.int64()),
        }
    )
    lines = write_workload(t, tmp_path / "x.jsonl").read_text(encoding="utf-8").splitlines()
    objs = [json.loads(line) for line in lines]
    assert [o["prompt"] for o in objs] == prompts
    assert [o["latency_s"] for o in objs] == [0.1, 1 / 3, 1e-7, 2.0, None, None]
    assert [o["step"] for o in objs] == [0, 1, 2, None, 4, 5]
    assert objs[0]["submitted_at"] == "2025-01-01T00:00:00.000000Z"


def test_unknown_extension_is_refused(table: pa.Table, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot tell the format"):
        write_workload(table, tmp_path / "w.xlsx")


def test_non_record_columns_are_refused(table: pa.Table, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown columns"):
        write_workload(
            table.append_column("latency", table.column("latency_s")), tmp_path / "w.csv"
        )
    with pytest.raises(ValueError, match="missing required"):
        write_workload(table.drop_columns(["device"]), tmp_path / "w.csv")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_writing_100k_records_is_fast(tmp_path: Path) -> None:
    big = generate_workload(WorkloadConfig(n_records=100_000))
    for ext in (".parquet", ".jsonl", ".csv"):
        start = time.perf_counter()
        write_workload(big, tmp_path / f"w{ext}")
        assert time.perf_counter() - start < 5.0, ext
