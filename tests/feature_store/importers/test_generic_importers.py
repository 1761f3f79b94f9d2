from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import InputError
from core.records import RECORD_FIELDS
from feature_store.importers import (
    ERROR,
    ERROR_FIELD,
    FORMATS,
    LINE,
    CsvImporter,
    JsonlImporter,
    ParquetImporter,
    detect_format,
    get_importer,
)

HEADER = "request_id,served_model,device,submitted_at,prompt,latency_s\n"


def read(
    importer: CsvImporter | JsonlImporter | ParquetImporter, path: Path, **kw: int
) -> pa.Table:
    return pa.concat_tables(importer.read(path, **kw))


def test_csv_maps_columns_and_keeps_malformed_rows_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(
        HEADER
        + 'r1,m,h100,2025-01-01T00:00:00Z,"a prompt\nover\nthree lines",1.5\n'
        + "r2,m,h100,2025-01-01T00:00:01Z,,\n"
        + "r3,m,h100\n"
        + "r4,m,h100,2025-01-01T00:00:03Z,p,2\n"
    )
    table = read(CsvImporter(), path)
    assert table.column_names == [
        LINE,
        "request_id",
        "served_model",
        "device",
        "submitted_at",
        "prompt",
        "latency_s",
        ERROR_FIELD,
        ERROR,
    ]
    rows = table.to_pylist()
    assert [r[LINE] for r in rows] == [2, 5, 6, 7]
    assert rows[0]["prompt"] == "a prompt\nover\nthree lines"
    assert rows[1]["prompt"] is None
    assert rows[1]["latency_s"] is None
    assert rows[2]["request_id"] is None
    assert rows[2][ERROR] == "expected 6 fields, found 3"
    assert [r[ERROR] for r in rows if r[LINE] != 6] == [None, None, None]
    assert rows[3]["latency_s"] == "2"


def test_csv_gz_reads_like_plain_csv(tmp_path: Path) -> None:
    text = HEADER + "r1,m,h100,2025-01-01T00:00:00Z,p,1.5\n"
    plain, packed = tmp_path / "a.csv", tmp_path / "a.csv.gz"
    plain.write_text(text)
    packed.write_bytes(gzip.compress(text.encode()))
    assert read(CsvImporter(), plain).equals(read(CsvImporter(), packed))


def test_csv_unknown_column_is_an_error_listing_it(tmp_path: Path) -> None:
    path = tmp_path / "typo.csv"
    path.write_text("request_id,served_model,device,submitted_at,latency\nr,m,d,t,1\n")
    with pytest.raises(InputError, match="unknown column") as caught:
        read(CsvImporter(), path)
    assert "latency" in str(caught.value)
    assert "typo.csv" in str(caught.value)


def test_csv_missing_required_columns_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "partial.csv"
    path.write_text("request_id,latency_s\nr,1\n")
    with pytest.raises(InputError, match=r"missing required column.*served_model, device"):
        read(CsvImporter(), path)


def test_jsonl_bad_lines_become_error_rows(tmp_path: Path) -> None:
    good = {"request_id": "r1", "served_model": "m", "device": "d", "submitted_at": 1.7e9}
    lines = [
        json.dumps(good),
        "{not json",
        "",
        "[1, 2]",
        json.dumps({**good, "request_id": "r5", "latency": 1.0}),
        json.dumps({**good, "request_id": "r6", "latency_s": True}),
        json.dumps({**good, "request_id": "r7", "prompt": ["a"]}),
        json.dumps({**good, "request_id": "r8", "latency_s": 2, "input_tokens": 10}),
    ]
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rows = read(JsonlImporter(), path).to_pylist()
    assert [r[LINE] for r in rows] == [1, 2, 4, 5, 6, 7, 8]
    by_line = {r[LINE]: r for r in rows}
    assert by_line[1][ERROR] is None
    assert by_line[1]["request_id"] == "r1"
    assert by_line[2][ERROR].startswith("invalid JSON:")
    assert by_line[2]["request_id"] is None
    assert by_line[4][ERROR] == "invalid JSON: expected an object, found list"
    assert by_line[5][ERROR_FIELD] == "latency"
    assert "unknown field" in by_line[5][ERROR]
    assert by_line[6][ERROR_FIELD] == "latency_s"
    assert "boolean" in by_line[6][ERROR]
    assert by_line[7][ERROR_FIELD] == "prompt"
    assert by_line[8][ERROR] is None
    assert by_line[8]["input_tokens"] == 10


def test_jsonl_keeps_uniform_numbers_typed_and_mixed_values_as_strings(tmp_path: Path) -> None:
    base = {"request_id": "r", "served_model": "m", "device": "d"}
    records = [
        {**base, "submitted_at": 1.7e9, "input_tokens": 3, "latency_s": 1},
        {**base, "submitted_at": "2025-01-01T00:00:00Z", "input_tokens": 4, "latency_s": 1.5},
    ]
    path = tmp_path / "calls.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in records).encode()))
    table = read(JsonlImporter(), path)
    assert table.schema.field("input_tokens").type == pa.int64()
    assert table.schema.field("latency_s").type == pa.float64()
    assert table.column("latency_s").to_pylist() == [1.0, 1.5]
    assert table.column("submitted_at").to_pylist() == ["1700000000.0", "2025-01-01T00:00:00Z"]
    assert "prompt" not in table.column_names


def test_jsonl_batches_preserve_lines(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps({"request_id": f"r{i}"}) + "\n" for i in range(7)))
    tables = list(JsonlImporter().read(path, batch_rows=3))
    assert [t.num_rows for t in tables] == [3, 3, 1]
    assert pa.concat_tables(tables).column(LINE).to_pylist() == list(range(1, 8))


def parquet_file(path: Path, **extra: list[object]) -> Path:
    table = pa.table(
        {
            "request_id": pa.array(["a", "b", "c"]).dictionary_encode(),
            "served_model": ["m"] * 3,
            "device": ["d"] * 3,
            "submitted_at": pa.array([0, 1, 2], type=pa.timestamp("ms", tz="UTC")),
            "latency_s": [1.0, None, 3.0],
            **extra,
        }
    )
    pq.write_table(table, path, row_group_size=2)
    return path


def test_parquet_rows_are_locations_and_types_survive(tmp_path: Path) -> None:
    path = parquet_file(tmp_path / "calls.parquet")
    tables = list(ParquetImporter().read(path, batch_rows=2))
    table = pa.concat_tables(tables)
    assert ParquetImporter.location == "row"
    assert table.column(LINE).to_pylist() == [1, 2, 3]
    assert table.column("request_id").type == pa.string()
    assert table.column("latency_s").to_pylist() == [1.0, None, 3.0]
    assert table.schema.field("submitted_at").type == pa.timestamp("ms", tz="UTC")
    assert table.column(ERROR).null_count == 3


def test_parquet_unknown_columns_and_unreadable_files_raise(tmp_path: Path) -> None:
    path = parquet_file(tmp_path / "typo.parquet", latency=[1, 2, 3])
    with pytest.raises(InputError, match=r"unknown column.*latency"):
        list(ParquetImporter().read(path))
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="not a readable Parquet file") as caught:
        list(ParquetImporter().read(broken))
    assert caught.value.file == str(broken)


def test_registry_names_and_options() -> None:
    assert set(FORMATS) == {
        "csv",
        "jsonl",
        "parquet",
        "minisweagent",
        "azure",
        "mooncake",
        "alpacaeval",
    }
    assert isinstance(get_importer("csv"), CsvImporter)
    with pytest.raises(InputError, match="unknown format 'xml'; valid formats: csv, jsonl"):
        get_importer("xml")
    with pytest.raises(InputError, match="options it accepts: device"):
        get_importer("minisweagent", colour="red")
    assert get_importer("minisweagent", device="api").device == "api"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("x.csv", "csv"),
        ("x.CSV.gz", "csv"),
        ("x.jsonl", "jsonl"),
        ("dir/x.jsonl.gz", "jsonl"),
        ("x.parquet", "parquet"),
        ("minisweagent_calls.csv.gz", "minisweagent"),
        ("azure_llm_2023_conv.csv", "azure"),
        ("mooncake_fast25_conversation_trace.jsonl", "mooncake"),
        ("alpacaeval_output_lengths.csv.gz", "alpacaeval"),
    ],
)
def test_detect_format(name: str, expected: str) -> None:
    assert detect_format(name) == expected


def test_detect_format_rejects_unknown_extensions() -> None:
    with pytest.raises(InputError, match="cannot tell the format"):
        detect_format("x.xlsx")


def test_every_generic_importer_emits_only_record_fields(tmp_path: Path) -> None:
    path = parquet_file(tmp_path / "calls.parquet")
    columns = set(read(ParquetImporter(), path).column_names)
    assert columns <= {LINE, ERROR_FIELD, ERROR, *RECORD_FIELDS}


def test_jsonl_lines_no_store_can_hold_are_rejected_alone(tmp_path: Path) -> None:
    from feature_store import DuckDBStore

    good = {"request_id": "r1", "served_model": "m", "device": "d", "submitted_at": 1.7e9}
    lines = [
        json.dumps(good),
        json.dumps({**good, "request_id": "r2", "prompt": "half \ud800 a pair"}),
        json.dumps({**good, "request_id": "r3", "\udc00key": 1}),
        '{"request_id": "r4", "served_model": "m", "device": "d", "submitted_at": 1.7e9, '
        f'"input_tokens": {"9" * 5000}}}',
        json.dumps({**good, "request_id": "r5"}),
    ]
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(lines) + "\n", errors="surrogatepass")
    rows = {r[LINE]: r for r in read(JsonlImporter(), path).to_pylist()}
    assert rows[2][ERROR_FIELD] == "prompt"
    assert "lone surrogate" in rows[2][ERROR]
    assert rows[3][ERROR_FIELD] == "\\udc00key"
    assert rows[4][ERROR].startswith("invalid JSON:")
    with DuckDBStore(":memory:") as store:
        report = store.ingest_batches(JsonlImporter().read(path))
    assert (report.accepted, [r.line for r in report.rejected]) == (2, [2, 3, 4])
