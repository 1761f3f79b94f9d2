from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from core.errors import InputError
from feature_store.importers import (
    ERROR,
    LINE,
    AzureTraceImporter,
    DeviceProfile,
    MooncakeTraceImporter,
    detect_format,
)
from feature_store.importers._traces import MOONCAKE_ORIGIN

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def shared(relative: str) -> Path:
    path = DATA / relative
    assert path.is_file(), f"shared data missing: {path}"
    return path


def read(importer: AzureTraceImporter | MooncakeTraceImporter, path: Path, **kw: int) -> pa.Table:
    return pa.concat_tables(importer.read(path, **kw))


def test_azure_maps_arrivals_without_outcomes(tmp_path: Path) -> None:
    path = tmp_path / "conv.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,lots,109\n"
    )
    first, second = read(AzureTraceImporter(), path).to_pylist()
    assert first["request_id"] == "azure:conv:2"
    assert first["submitted_at"] == datetime(2023, 11, 16, 18, 15, 46, 680590, tzinfo=UTC)
    assert (first["input_tokens"], first["output_tokens"]) == (374, 44)
    assert (first["served_model"], first["device"]) == ("azure-conv", "unknown")
    assert "latency_s" not in read(AzureTraceImporter(), path).column_names
    assert (second[LINE], second["_error_field"]) == (3, "input_tokens")
    assert "lots" in second[ERROR]


def test_azure_offsets_and_bad_times_are_parsed_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "conv.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46+01:00,1,2\nyesterday,1,2\n"
    )
    first, second = read(AzureTraceImporter(), path).to_pylist()
    assert first["submitted_at"] == datetime(2023, 11, 16, 17, 15, 46, tzinfo=UTC)
    assert second["_error_field"] == "submitted_at"
    assert second["submitted_at"] is None


def test_azure_wrong_header_raises(tmp_path: Path) -> None:
    path = tmp_path / "conv.csv"
    path.write_text("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,1\n")
    with pytest.raises(InputError, match=r"missing required column.*GeneratedTokens"):
        read(AzureTraceImporter(), path)


def mooncake_line(ms: float, tokens: int, blocks: list[int]) -> str:
    record = {"timestamp": ms, "input_length": tokens, "output_length": 7, "hash_ids": blocks}
    return json.dumps(record)


def test_mooncake_cached_tokens_are_the_seen_prefix(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_text(
        "\n".join(
            [
                mooncake_line(0, 1200, [0, 1, 2]),
                mooncake_line(5, 1500, [0, 1, 9]),  # 2 leading blocks seen
                '{"timestamp": 6, "input_length": "many"}',
                mooncake_line(7, 700, [0, 1]),  # capped at the prompt
                mooncake_line(8, 1024, [5, 2]),  # 2 seen, but not as a prefix
                "not json",
            ]
        )
        + "\n"
    )
    rows = read(MooncakeTraceImporter(), path).to_pylist()
    assert [r["cached_tokens"] for r in rows] == [0, 1024, None, 700, 0, None]
    assert [r[LINE] for r in rows if r[ERROR] is not None] == [3, 6]
    assert all(r[ERROR].startswith("invalid Mooncake record") for r in rows if r[ERROR])
    assert rows[1]["submitted_at"] == MOONCAKE_ORIGIN + timedelta(milliseconds=5)
    assert rows[1]["request_id"] == "mooncake:trace:2"
    origin = datetime(2030, 5, 1, 12, tzinfo=UTC)
    moved = read(MooncakeTraceImporter(origin="2030-05-01T12:00:00"), path).to_pylist()
    assert moved[1]["submitted_at"] == origin + timedelta(milliseconds=5)


def test_mooncake_turns_link_by_shared_prefix_blocks(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_text(
        "\n".join(
            [
                mooncake_line(0, 1500, [0, 1, 2]),  # conversation A, turn 0
                mooncake_line(1, 900, [0, 3]),  # only the system block shared: new conversation
                mooncake_line(2, 2500, [0, 1, 2, 4, 5]),  # A, turn 1
                "not json",
                mooncake_line(3, 3000, [0, 1, 2, 4, 6]),  # A: the latest through [0,1,2,4]
                mooncake_line(4, 1100, [0, 3, 8]),  # B, turn 1
            ]
        )
        + "\n"
    )
    rows = read(MooncakeTraceImporter(), path, batch_rows=2).to_pylist()
    a, b = "mooncake:trace:1", "mooncake:trace:2"
    assert [r["workflow_id"] for r in rows] == [a, b, a, None, a, b]
    assert [r["step"] for r in rows] == [0, 0, 1, None, 2, 1]


@pytest.mark.shared_data
def test_real_azure_trace() -> None:
    path = shared("traces/azure_llm_2023_conv.csv")
    assert detect_format(path) == "azure"
    table = read(AzureTraceImporter(), path)
    assert table.num_rows == 19_366
    assert table.column(ERROR).null_count == 19_366
    times = table.column("submitted_at").to_pylist()
    assert times == sorted(times)
    assert times[0] == datetime(2023, 11, 16, 18, 15, 46, 680590, tzinfo=UTC)
    assert table.column(LINE).to_pylist() == list(range(2, 19_368))
    assert len(set(table.column("request_id").to_pylist())) == 19_366


@pytest.mark.shared_data
def test_real_mooncake_trace() -> None:
    path = shared("traces/mooncake_fast25_conversation_trace.jsonl")
    assert detect_format(path) == "mooncake"
    table = read(MooncakeTraceImporter(), path)
    assert table.num_rows == 12_031
    assert table.column(ERROR).null_count == 12_031
    rows = table.to_pylist()
    assert [r["cached_tokens"] for r in rows[:2]] == [0, 512]  # block 0 is shared
    assert all(
        r["cached_tokens"] <= r["input_tokens"]
        and (r["cached_tokens"] % 512 == 0 or r["cached_tokens"] == r["input_tokens"])
        for r in rows
    )
    assert rows[-1]["submitted_at"] - rows[0]["submitted_at"] < timedelta(minutes=60)
    assert len({r["request_id"] for r in rows}) == 12_031
    later = [r for r in rows if r["step"] > 0]
    assert len(later) == 4_658  # 39% of the requests continue a conversation
    first = {r["request_id"] for r in rows if r["step"] == 0}
    assert all(r["workflow_id"] in first for r in later)


@pytest.mark.shared_data
def test_a_profile_composes_outcomes_independent_of_batching() -> None:
    profile = DeviceProfile.load(shared("device_latency/splitwise_perf_model.csv"))
    path = shared("traces/azure_llm_2023_conv.csv")
    whole = read(AzureTraceImporter(profile=profile, seed=3), path)
    batched = read(AzureTraceImporter(profile=profile, seed=3), path, batch_rows=997)
    assert whole.equals(batched)
    assert whole.column("latency_s").null_count == 0
    rows = whole.to_pylist()
    assert all(0 < r["ttft_s"] < r["latency_s"] for r in rows)
    assert (rows[0]["served_model"], rows[0]["device"]) == ("llama2-70b", "h100-80gb")
    other_seed = read(AzureTraceImporter(profile=profile, seed=4), path)
    assert not other_seed.column("latency_s").equals(whole.column("latency_s"))
