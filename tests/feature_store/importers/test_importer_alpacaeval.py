from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from core.errors import InputError
from feature_store.importers import ERROR, ERROR_FIELD, AlpacaEvalImporter, DeviceProfile

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def shared(relative: str) -> Path:
    path = DATA / relative
    assert path.is_file(), f"shared data missing: {path}"
    return path


def toy_profile() -> DeviceProfile:
    """Two prompt sizes; two repeats at 512 with different output sizes."""
    return DeviceProfile(
        model="toy",
        hardware="toy-gpu",
        batch_size=1,
        source="test",
        prompt_size=np.array([128.0, 512.0, 512.0, 512.0]),
        token_size=np.array([128.0, 128.0, 128.0, 1024.0]),
        prefill_s=np.array([0.1, 0.4, 0.5, 0.6]),
        per_token_s=np.array([0.01, 0.02, 0.03, 0.04]),
    )


def test_compose_uses_the_nearest_sizes_and_one_real_measurement() -> None:
    profile = toy_profile()
    inputs = [10, 320, 319, 5000, 600]
    outputs = [100, 10, 10, 10, 2000]
    composed = profile.compose(inputs, outputs, np.random.default_rng(0))
    # 320 is a tie between 128 and 512: the larger wins; 2000 -> token size 1024
    assert composed.measurement[0] == 0
    assert composed.measurement[2] == 0
    assert composed.measurement[1] in (1, 2)
    assert composed.measurement[3] in (1, 2)
    assert composed.measurement[4] == 3
    chosen = composed.measurement
    expected = profile.prefill_s[chosen] + np.array(outputs) * profile.per_token_s[chosen]
    np.testing.assert_array_equal(composed.latency_s, expected)
    np.testing.assert_array_equal(composed.ttft_s, profile.prefill_s[chosen])
    draws = {
        int(profile.compose([512], [1], np.random.default_rng(s)).measurement[0]) for s in range(40)
    }
    assert draws == {1, 2}  # both repeats get drawn


def write_lengths(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["instruction_idx", "model_dir", "generator", "output_chars", "output_words"]
        )
        writer.writerows((idx, model_dir, gen, "10", words) for idx, model_dir, gen, words in rows)
    return path


def test_joins_instructions_and_approximates_tokens(tmp_path: Path) -> None:
    (tmp_path / "alpacaeval_instructions.csv").write_text(
        'instruction_idx,dataset,instruction\n0,koala,"Say hi,\nplease"\n1,vicuna,abcd\n'
    )
    path = write_lengths(
        tmp_path / "lengths.csv",
        [("0", "dir-a", "gen-a", "3"), ("1", "dir-a", "gen-a", "5"), ("7", "dir-b", "gen-b", "1")],
    )
    rows = pa.concat_tables(AlpacaEvalImporter(profile=toy_profile()).read(path)).to_pylist()
    first, second, missing = rows
    assert first["request_id"] == "alpacaeval:dir-a:0"
    assert first["prompt"] == "Say hi,\nplease"
    assert first["input_tokens"] == 4  # ceil(14 / 4)
    assert first["output_tokens"] == 4  # round(3 * 4 / 3)
    assert (second["input_tokens"], second["output_tokens"]) == (1, 7)
    assert first["submitted_at"] == datetime(2024, 1, 1, tzinfo=UTC)
    assert second["submitted_at"] == datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert (first["served_model"], first["device"]) == ("gen-a", "toy-gpu")
    assert first["latency_s"] == pytest.approx(0.1 + 4 * 0.01)
    assert first["ttft_s"] == pytest.approx(0.1)
    assert missing[ERROR_FIELD] == "prompt"
    assert "'7'" in missing[ERROR]
    assert missing["latency_s"] is None
    plain = pa.concat_tables(AlpacaEvalImporter().read(path)).to_pylist()[0]
    assert plain["device"] == "unknown"
    assert "latency_s" not in plain


def test_missing_instructions_file_is_an_input_error(tmp_path: Path) -> None:
    path = write_lengths(tmp_path / "lengths.csv", [("0", "d", "g", "3")])
    with pytest.raises(InputError, match=r"alpacaeval_instructions\.csv"):
        list(AlpacaEvalImporter().read(path))


@pytest.mark.shared_data
def test_profile_selection_errors_list_the_choices() -> None:
    splitwise = shared("device_latency/splitwise_perf_model.csv")
    with pytest.raises(InputError, match=r"available: .*llama2-70b, a100-80gb"):
        DeviceProfile.load(splitwise, model="gpt-5")
    with pytest.raises(InputError, match="tensor_parallel, batch_size"):
        DeviceProfile.load(splitwise, batch_size=3)
    bench = shared("device_latency/llm_inference_bench_all_results.csv")
    with pytest.raises(InputError, match="choose among"):
        DeviceProfile.load(bench, model="meta-llama/Llama-2-70b-hf", hardware="Nvidia H100 GPU")


@pytest.mark.shared_data
def test_splitwise_repeats_are_distinct_real_measurements() -> None:
    profile = DeviceProfile.load(shared("device_latency/splitwise_perf_model.csv"))
    assert profile.source == "splitwise_perf_model.csv (tensor_parallel=8)"
    sizes, counts = np.unique(profile.prompt_size, return_counts=True)
    assert sizes.tolist() == [128, 256, 512, 1024, 2048, 4096, 8192]
    assert counts.tolist() == [5, 5, 35, 5, 5, 5, 5]  # 512: 7 output sizes x 5 repeats


@pytest.mark.shared_data
def test_bench_profile_has_no_prefill_and_amortised_token_time() -> None:
    profile = DeviceProfile.load(
        shared("device_latency/llm_inference_bench_all_results.csv"),
        model="mistralai/Mistral-7B-v0.1",
        hardware="Nvidia GH200 GPU",
        framework="TensorRT-LLM",
    )
    composed = profile.compose([100], [10], np.random.default_rng(0))
    assert np.isnan(composed.ttft_s[0])
    assert composed.latency_s[0] == pytest.approx(0.688306736946106 / 128 * 10)


@pytest.mark.shared_data
def test_real_alpacaeval_with_a_measured_device() -> None:
    splitwise = shared("device_latency/splitwise_perf_model.csv")
    importer = AlpacaEvalImporter(profile=splitwise, seed=7)
    path = shared("prompt_length/alpacaeval_output_lengths.csv.gz")
    table = pa.concat_tables(importer.read(path))
    assert table.num_rows == 146_407
    assert table.column(ERROR).null_count == 146_407
    assert len(set(table.column("request_id").to_pylist())) == 146_407
    latency = table.column("latency_s").to_numpy()
    assert (latency > 0).all()
    head = table.slice(0, 3).to_pylist()
    assert [r["request_id"] for r in head] == [f"alpacaeval:Conifer-7B-DPO:{i}" for i in range(3)]
    assert [(r["input_tokens"], r["output_tokens"]) for r in head] == [
        (20, 352),
        (9, 253),
        (37, 691),
    ]
    assert [r["latency_s"] for r in head] == pytest.approx(
        [10.563002156253672, 7.763970358530976, 20.677433272657318], rel=1e-12
    )
    assert [r["ttft_s"] for r in head] == pytest.approx(
        [0.06070199998794124, 0.04938628303352744, 0.06070199998794124], rel=1e-12
    )
    assert head[0]["submitted_at"] + timedelta(seconds=2) == head[2]["submitted_at"]
    # every composed outcome is prefill + tokens x per-token of one row of the raw file
    with splitwise.open() as handle:
        measured = {
            (float(r["prompt_time"]) / 1000, float(r["token_time"]) / 1000)
            for r in csv.DictReader(handle)
            if (r["model"], r["hardware"], r["batch_size"]) == ("llama2-70b", "h100-80gb", "1")
        }
    for row in table.slice(0, 2_000).to_pylist():
        per_token = next(t for p, t in measured if p == row["ttft_s"])
        assert row["latency_s"] == pytest.approx(row["ttft_s"] + row["output_tokens"] * per_token)
