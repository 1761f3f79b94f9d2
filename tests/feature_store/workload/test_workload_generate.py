"""generate_workload: schema, exact seeded values, reproducibility, the record contract."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from core import CROSS_FIELD_RULES, RECORD_FIELDS, CompletionRecord, field_specs
from feature_store.workload import WORKLOAD_SCHEMA, WorkloadConfig, generate_workload


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return generate_workload(WorkloadConfig(seed=0, n_records=20_000))


def test_schema_is_exactly_the_record_fields(table: pa.Table) -> None:
    assert table.column_names == list(RECORD_FIELDS)
    assert table.schema == WORKLOAD_SCHEMA
    types = {f.name: str(f.type) for f in table.schema}
    assert types["submitted_at"] == "timestamp[us, tz=UTC]"
    assert types["request_id"] == types["prompt"] == "string"
    assert types["input_tokens"] == types["step"] == "int64"
    assert types["latency_s"] == types["kv_cache_util"] == "double"


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_exactly_n_records(n: int) -> None:
    assert generate_workload(WorkloadConfig(n_records=n, seed=n)).num_rows == n


def test_rows_are_sorted_by_submission(table: pa.Table) -> None:
    ts = table.column("submitted_at").cast(pa.int64()).to_numpy()
    assert (np.diff(ts) >= 0).all()


def test_first_record_of_seed_0_is_pinned() -> None:
    t = generate_workload(WorkloadConfig(seed=0, n_records=1000))
    first = t.slice(0, 1).to_pylist()[0]
    assert first["request_id"] == "wl-s0-00000000"
    assert first["workflow_id"] == "wf-s0-0000000"
    assert first["served_model"] == "llama-3.1-8b"
    assert first["device"] == "h100-pcie"
    assert first["prompt_class"] == "agent_observation"
    assert first["prompt"] == (
        "Step 1 result: `cat setup.cfg` printed 85 lines. "
        "If the task is done, submit; else run a command."
    )
    assert first["submitted_at"] == datetime(2025, 3, 3, 8, 0, 1, 231525, tzinfo=UTC)
    assert (first["input_tokens"], first["cached_tokens"], first["output_tokens"]) == (
        2812,
        1792,
        65,
    )
    assert (first["num_running"], first["num_waiting"], first["step"]) == (53, 0, 0)
    assert first["latency_s"] == pytest.approx(2.053474, abs=1e-6)
    assert first["ttft_s"] == pytest.approx(0.067699, abs=1e-6)
    assert first["kv_cache_util"] == pytest.approx(0.307770, abs=1e-6)
    assert pc.sum(t.column("output_tokens")).as_py() == 320062
    assert pc.sum(t.column("input_tokens")).as_py() == 11152576
    assert pc.sum(t.column("latency_s")).as_py() == pytest.approx(14766.076893, abs=1e-4)


def test_same_seed_same_table_other_seed_other_table() -> None:
    cfg = WorkloadConfig(seed=42, n_records=3000)
    a, b = generate_workload(cfg), generate_workload(cfg)
    assert a.equals(b)
    c = generate_workload(cfg.model_copy(update={"seed": 43}))
    assert not a.equals(c)
    assert c.column("request_id")[0].as_py() == "wl-s43-00000000"
    assert not np.array_equal(a.column("latency_s").to_numpy(), c.column("latency_s").to_numpy())


def test_ids_are_unique_and_workflows_are_complete(table: pa.Table) -> None:
    df = table.select(["request_id", "workflow_id", "step"]).to_pandas()
    assert df.request_id.is_unique
    steps = df.groupby("workflow_id").step
    assert (steps.min() == 0).all()
    assert (steps.max() + 1 == steps.count()).all()  # steps 0..k-1, each once
    assert steps.nunique().equals(steps.count())


def test_calls_chain_after_the_previous_completes(table: pa.Table) -> None:
    wf = table.column("workflow_id").to_numpy(zero_copy_only=False)
    step = table.column("step").to_numpy()
    order = np.lexsort((step, wf))
    submitted = table.column("submitted_at").cast(pa.int64()).to_numpy()[order] / 1e6
    latency = table.column("latency_s").to_numpy()[order]
    same = wf[order][1:] == wf[order][:-1]
    gap = (submitted[1:] - (submitted[:-1] + latency[:-1]))[same]
    assert (gap >= -1e-5).all()
    assert np.median(gap) > 0


def test_every_row_satisfies_the_record_contract(table: pa.Table) -> None:
    for spec in field_specs():
        col = table.column(spec.name)
        if spec.required:
            assert col.null_count == 0, spec.name
        if spec.kind in ("int", "float"):
            values = col.drop_null().to_numpy()  # optional fields may be unreported
            assert np.isfinite(values).all(), spec.name
            if spec.ge is not None:
                assert (values >= spec.ge).all(), spec.name
            if spec.gt is not None:
                assert (values > spec.gt).all(), spec.name
            if spec.le is not None:
                assert (values <= spec.le).all(), spec.name
        if spec.kind == "str":
            lengths = pc.utf8_length(col).to_numpy()
            if spec.min_length is not None:
                assert (lengths >= spec.min_length).all(), spec.name
            if spec.max_length is not None:
                assert (lengths <= spec.max_length).all(), spec.name
    for rule in CROSS_FIELD_RULES:
        left, right = table.column(rule.left).to_numpy(), table.column(rule.right).to_numpy()
        assert (left <= right).all(), rule


def test_a_sample_validates_as_completion_records(table: pa.Table) -> None:
    rows = np.random.default_rng(0).choice(table.num_rows, 500, replace=False)
    for row in table.take(pa.array(rows)).to_pylist():
        record = CompletionRecord.model_validate(row)
        assert record.submitted_at.tzinfo == UTC
        assert record.latency_s is not None


#: Record fields the generator does not model: null (not reported) in every row.
UNMODELLED = ("prefill_tokens_in_flight", "decode_tokens_in_flight")


def test_no_column_is_empty(table: pa.Table) -> None:
    for name in RECORD_FIELDS:
        expected = table.num_rows if name in UNMODELLED else 0
        assert table.column(name).null_count == expected, name


@pytest.mark.slow
def test_100k_records_are_fast() -> None:
    start = time.perf_counter()
    t = generate_workload(WorkloadConfig(n_records=100_000, seed=1))
    elapsed = time.perf_counter() - start
    assert t.num_rows == 100_000
    assert elapsed < 10.0
