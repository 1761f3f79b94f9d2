"""The RecordStore contract, run against every backend configuration."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from core import LATEST_TIME, MAX_PROMPT_CHARS, RECORD_FIELDS, CompletionRecord
from feature_store import RecordStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def row(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": f"r{i}",
        "served_model": "m",
        "device": "h100",
        "submitted_at": (T0 + timedelta(seconds=10 * i)).isoformat(),
        "latency_s": 1.0 + i,
        "output_tokens": 10 * (i + 1),
        **extra,
    }


def test_ingest_is_idempotent(store: RecordStore) -> None:
    rows = [row(i) for i in range(5)]
    first = store.ingest_rows(rows)
    assert (first.accepted, first.duplicates, first.rejected) == (5, 0, ())
    again = store.ingest_rows(rows)
    assert (again.accepted, again.duplicates) == (0, 5)
    assert again.duplicate_indices == (0, 1, 2, 3, 4)
    assert store.stats().records == 5


@pytest.mark.parametrize("n", [3, 700])  # a few keys, and more than one lookup list holds
def test_a_retried_batch_stores_only_its_new_rows_and_prompts(store: RecordStore, n: int) -> None:
    prompts = [f"prompt {i % 7}" for i in range(2 * n)]
    first = store.ingest_rows([row(i, prompt=prompts[i]) for i in range(0, 2 * n, 2)])
    assert (first.accepted, first.duplicates) == (n, 0)
    mixed = store.ingest_rows([row(i, prompt=prompts[i]) for i in range(2 * n)])
    assert (mixed.accepted, mixed.duplicates) == (n, n)
    assert mixed.duplicate_indices == tuple(range(0, 2 * n, 2))
    assert store.stats().records == 2 * n
    frame = store.training_frame(columns=["request_id", "prompt"])
    ids, texts = frame.column("request_id").to_pylist(), frame.column("prompt").to_pylist()
    stored = dict(zip(ids, texts, strict=True))
    assert stored == {f"r{i}": prompts[i] for i in range(2 * n)}
    assert store.drift_inbox_size() == 2 * n


def test_duplicates_within_one_call_keep_the_first(store: RecordStore) -> None:
    report = store.ingest_rows([row(0, latency_s=1.0), row(0, latency_s=9.0), row(1)])
    assert (report.accepted, report.duplicates) == (2, 1)
    assert report.duplicate_indices == (1,)
    frame = store.training_frame(columns=["request_id", "latency_s"])
    assert frame.column("latency_s").to_pylist() == [1.0, 2.0]


def test_duplicate_indices_skip_rejected_rows_and_span_the_call(store: RecordStore) -> None:
    store.ingest_rows([row(1)])
    report = store.ingest_rows([row(0), row(1), row(2, latency_s=-1), row(0), row(3)])
    assert (report.accepted, report.duplicates) == (2, 2)
    assert report.duplicate_indices == (1, 3)
    assert [r.index for r in report.rejected] == [2]


def test_bad_rows_are_rejected_with_reasons_and_good_rows_kept(store: RecordStore) -> None:
    rows = [
        row(0),
        row(1, latency_s=-2),
        row(2, output_tokens="12.5"),
        {k: v for k, v in row(3).items() if k != "device"},
        row(4, ttft_s=99.0),
        row(5, kv_cache_util=1.2),
        row(6, submitted_at="yesterday"),
        row(7, latency=3.0),
        row(8, step=True),
        "not a record",
        row(10),
    ]
    report = store.ingest_rows(rows)  # type: ignore[arg-type]
    assert report.accepted == 2
    got = [(r.index, r.line, r.field) for r in report.rejected]
    assert got == [
        (1, 2, "latency_s"),
        (2, 3, "output_tokens"),
        (3, 4, "device"),
        (4, 5, "ttft_s"),
        (5, 6, "kv_cache_util"),
        (6, 7, "submitted_at"),
        (7, 8, "latency"),
        (8, 9, "step"),
        (9, 10, None),
    ]
    reasons = {r.field: r.reason for r in report.rejected}
    assert reasons["latency_s"] == "must be > 0 (got -2.0)"
    assert reasons["output_tokens"] == "not an integer: 12.5"
    assert reasons["device"] == "required field is missing"
    assert reasons["ttft_s"] == "must be <= latency_s (99.0 > 5.0)"
    assert reasons["latency"] == "unknown field(s): latency"


def test_typed_records_round_trip(store: RecordStore) -> None:
    rec = CompletionRecord.model_validate(
        row(
            0,
            prompt="Fix the failing test",
            input_tokens=120,
            cached_tokens=100,
            num_running=3,
            num_waiting=1,
            kv_cache_util=0.4,
            workflow_id="w",
            step=2,
            ttft_s=0.25,
            prompt_class="code",
        )
    )
    assert store.ingest([rec]).accepted == 1
    frame = store.training_frame()
    got = {k: v[0] for k, v in frame.to_pydict().items()}
    for name, value in rec.model_dump().items():
        assert got[name] == value, name
    assert got["completed_at"] == rec.submitted_at + timedelta(seconds=1.0)


def test_a_failing_source_writes_nothing(store: RecordStore) -> None:
    def batches() -> Iterator[pa.Table]:
        yield pa.table({"_line": [1], **{k: [str(v)] for k, v in row(0).items()}})
        raise OSError("truncated")

    with pytest.raises(OSError, match="truncated"):
        store.ingest_batches(batches())
    assert store.stats().records == 0
    assert store.ingest_rows([row(0)]).accepted == 1


def test_endpoint_features_use_only_completions_before_submission(store: RecordStore) -> None:
    # r0 runs 0-100 s; r1 runs 10-12 s; r2 is submitted at 20 s: only r1 has finished.
    rows = [
        row(0, latency_s=100.0, output_tokens=100),
        row(1, latency_s=2.0, output_tokens=40),
        row(2, latency_s=1.0),
        {**row(3, latency_s=1.0), "submitted_at": (T0 + timedelta(seconds=200)).isoformat()},
    ]
    store.ingest_rows(rows)
    frame = store.training_frame().to_pydict()
    assert frame["request_id"] == ["r0", "r1", "r2", "r3"]
    assert frame["ep_completions"] == [0, 0, 1, 3]
    assert frame["ep_median_tokens_per_s"][2] == pytest.approx(20.0)
    assert frame["ep_median_latency_s"][3] == pytest.approx(2.0)  # median of 100, 2, 1
    live = store.endpoint_stats("m", "h100", at=T0 + timedelta(seconds=20))
    assert live.completions == 1
    assert live.median_tokens_per_s == pytest.approx(20.0)


def test_frame_window_as_of_and_filters(store: RecordStore) -> None:
    store.ingest_rows([row(i) for i in range(6)] + [row(6, latency_s=None)])
    store.ingest_rows([{**row(7), "served_model": "other"}])
    frame = store.training_frame(
        "m",
        start=T0 + timedelta(seconds=10),
        end=T0 + timedelta(seconds=50),
        columns=["request_id"],
    )
    assert frame.column_names == ["request_id"]
    assert frame.column("request_id").to_pylist() == ["r1", "r2", "r3", "r4"]
    # as_of: r3 (submitted 30 s, latency 4 s) completes at 34 s, after the cut-off.
    cut = store.training_frame("m", as_of=T0 + timedelta(seconds=33), columns=["request_id"])
    assert cut.column("request_id").to_pylist() == ["r0", "r1", "r2"]
    everything = store.training_frame("m", require=(), columns=["request_id"])
    assert everything.num_rows == 7
    with pytest.raises(ValueError, match="unknown columns"):
        store.training_frame(columns=["nope"])


def test_embeddings_cache(store: RecordStore) -> None:
    store.ingest_rows([row(0, prompt="alpha"), row(1, prompt="beta"), row(2, prompt="alpha")])
    missing = dict(store.prompts_missing_embeddings("minilm"))
    assert sorted(missing.values()) == ["alpha", "beta"]
    keys = sorted(missing)
    vectors = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert store.put_embeddings("minilm", keys, vectors) == 2
    assert store.put_embeddings("minilm", keys, vectors) == 0
    found, got = store.get_embeddings("minilm", [keys[1], "nope", keys[0]])
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(got[[0, 2]], vectors[[1, 0]])
    assert list(store.prompts_missing_embeddings("minilm")) == []
    assert list(store.prompts_missing_embeddings("other")) != []
    assert store.stats().embeddings == {"minilm": 2}


def test_drift_inbox_holds_new_completions_with_a_latency(store: RecordStore) -> None:
    rec = CompletionRecord.model_validate(
        row(9, prompt="Why is the build red?", input_tokens=12, workflow_id="w", step=1)
    )
    store.ingest([rec])
    store.ingest_rows([row(5), row(1, latency_s=None), row(3), row(4, latency_s=-1)])
    assert store.drift_inbox_size() == 3  # r1 has no latency, r4 was rejected
    taken = store.drift_inbox_take()
    assert taken.column_names == list(RECORD_FIELDS)
    assert taken.column("request_id").to_pylist() == ["r9", "r5", "r3"]  # enqueue order
    assert CompletionRecord.model_validate(taken.to_pylist()[0]) == rec
    assert store.drift_inbox_size() == 3  # taking does not remove
    # Re-ingesting stored records enqueues nothing; a new one goes to the back.
    again = store.ingest_rows([row(9), row(5), row(7)])
    assert (again.accepted, again.duplicates) == (1, 2)
    assert store.drift_inbox_take(limit=2).column("request_id").to_pylist() == ["r9", "r5"]
    assert store.drift_inbox_ack(["r9", "r5", "nope"]) == 2
    assert store.drift_inbox_ack(["r9"]) == 0
    assert store.drift_inbox_ack([]) == 0
    assert store.drift_inbox_take().column("request_id").to_pylist() == ["r3", "r7"]
    assert store.drift_inbox_size() == 2
    assert store.ingest_rows([row(9)]).duplicates == 1
    assert store.drift_inbox_size() == 2  # acknowledged records are never re-enqueued


def test_nul_characters_are_stored_as_replacement_characters(store: RecordStore) -> None:
    report = store.ingest_rows([row(1, prompt="cat a.bin\x00\x00 | head", prompt_class="x\x00")])
    assert (report.accepted, report.rejected) == (1, ())
    frame = store.training_frame(columns=["prompt", "prompt_class", "prompt_sha256"])
    (stored,) = frame.to_pylist()
    assert stored["prompt"] == "cat a.bin\ufffd\ufffd | head"
    assert stored["prompt_class"] == "x\ufffd"
    expected = __import__("hashlib").sha256(stored["prompt"].encode()).hexdigest()
    assert stored["prompt_sha256"] == expected
    assert store.ingest_rows([row(1, prompt="other")]).duplicates == 1


def test_a_backfill_is_stored_but_not_judged(store: RecordStore) -> None:
    from feature_store.importers import LINE

    def batch(ids: range) -> pa.Table:
        rows = [row(i) for i in ids]
        columns = {k: pa.array([str(r[k]) for r in rows], pa.string()) for k in rows[0]}
        return pa.table({LINE: pa.array(range(1, len(rows) + 1), pa.int64()), **columns})

    history = store.ingest_batches([batch(range(5))], source="history", judge=False)
    assert history.accepted == 5
    assert store.drift_inbox_size() == 0
    assert store.training_frame().num_rows == 5
    # A later live ingest of the same and new ids enqueues only what it newly stored.
    live = store.ingest_batches([batch(range(3, 8))], source="live")
    assert (live.accepted, live.duplicates) == (3, 2)
    assert store.drift_inbox_take().column("request_id").to_pylist() == ["r5", "r6", "r7"]


def test_drift_inbox_take_of_an_empty_inbox(store: RecordStore) -> None:
    empty = store.drift_inbox_take()
    assert empty.num_rows == 0
    assert empty.column_names == list(RECORD_FIELDS)
    assert store.drift_inbox_size() == 0


def test_named_locks(store: RecordStore) -> None:
    lock = store.try_lock("drift-judge")
    assert lock is not None
    assert lock.held()
    assert lock.name == "drift-judge"
    assert store.try_lock("drift-judge") is None
    other = store.try_lock("retrain:m")
    assert other is not None
    assert other.held()
    lock.release()
    assert not lock.held()
    lock.release()  # idempotent
    again = store.try_lock("drift-judge")
    assert again is not None
    with again:
        assert again.held()
    assert not again.held()
    other.release()


# --- the drift judge's persisted state ---------------------------------------------------
def test_drift_state_round_trip_upsert_and_drop(store: RecordStore) -> None:
    assert store.load_drift_state() == {}
    text = '{"format":1,"u":"AAAAAAAA4D8=","name":"\\u00e9t\\u00e9 \\u0000"}'
    store.save_drift_state({"m|default|h100": text, "judge": "{}"})
    assert store.load_drift_state() == {"m|default|h100": text, "judge": "{}"}
    store.save_drift_state({"m|default|h100": "{}", "m|code|h100": "[1]"}, drop=["judge"])
    assert store.load_drift_state() == {"m|default|h100": "{}", "m|code|h100": "[1]"}
    # Dropped and saved in one call: the new state is kept.
    store.save_drift_state({"m|code|h100": "[2]"}, drop=["m|code|h100", "unknown"])
    assert store.load_drift_state() == {"m|default|h100": "{}", "m|code|h100": "[2]"}
    store.save_drift_state({}, drop=["m|default|h100", "m|code|h100"])
    assert store.load_drift_state() == {}


def test_drift_state_is_saved_with_its_inbox_acknowledgement(store: RecordStore) -> None:
    store.ingest_rows([row(i) for i in range(4)])
    store.save_drift_state({"m|default|h100": '{"n":2}'}, ack=["r0", "r1", "nope"])
    assert store.drift_inbox_take().column("request_id").to_pylist() == ["r2", "r3"]
    assert store.load_drift_state() == {"m|default|h100": '{"n":2}'}
    # A save that fails (a state that is not text) changes nothing: nor state, nor inbox.
    bad: dict[str, Any] = {"m|default|h100": '{"n":4}', "m|x|h100": None}
    with pytest.raises(Exception):  # noqa: B017, PT011 (each backend raises its own error)
        store.save_drift_state(bad, drop=["m|default|h100"], ack=["r2", "r3"])
    assert store.drift_inbox_size() == 2
    assert store.load_drift_state() == {"m|default|h100": '{"n":2}'}


def test_values_no_backend_can_hold_are_rejected_alone(store: RecordStore) -> None:
    end = LATEST_TIME - timedelta(seconds=1)
    rows = [
        row(0, latency_s=1e300),
        row(1, latency_s=2**64),
        row(2, submitted_at=end.isoformat(), latency_s=2.0),
        row(3, submitted_at=1e300),
        row(4, submitted_at="99999-01-01T00:00:00Z"),
        row(5, input_tokens=10**400),
        row(6, prompt="x" * (MAX_PROMPT_CHARS + 1)),
        row(7, submitted_at=end.isoformat(), latency_s=0.5),  # completes in range
        row(8),
    ]
    report = store.ingest_rows(rows)
    fields = [(r.index, r.field) for r in report.rejected]
    assert fields == [
        (0, "latency_s"),
        (1, "latency_s"),
        (2, "latency_s"),
        (3, "submitted_at"),
        (4, "submitted_at"),
        (5, "input_tokens"),
        (6, "prompt"),
    ]
    reasons = [r.reason for r in report.rejected]
    assert all("9999-12-31" in reasons[i] for i in (0, 2, 3, 4)), reasons
    assert all("out of range" in reasons[i] for i in (1, 5)), reasons
    assert str(MAX_PROMPT_CHARS) in reasons[6]
    assert report.accepted == 2
    stored = store.training_frame(columns=["request_id", "completed_at"]).to_pylist()
    assert sorted(r["request_id"] for r in stored) == ["r7", "r8"]
    assert max(r["completed_at"] for r in stored) <= LATEST_TIME


@pytest.mark.parametrize(
    "field", ["request_id", "served_model", "device", "prompt", "prompt_class", "workflow_id"]
)
def test_lone_surrogates_are_rejected_alone_in_every_text_field(
    store: RecordStore, field: str
) -> None:
    bad = row(0, **{field: "a\ud800b"})
    report = store.ingest_rows([bad, row(1, prompt="caf\u00e9 \U0001f600")])
    assert [(r.index, r.field) for r in report.rejected] == [(0, field)]
    assert "surrogate" in report.rejected[0].reason
    assert report.accepted == 1
    (stored,) = store.training_frame(columns=["request_id", "prompt"]).to_pylist()
    assert stored == {"request_id": "r1", "prompt": "caf\u00e9 \U0001f600"}


def test_a_frame_of_no_columns_is_a_clear_error(store: RecordStore) -> None:
    with pytest.raises(ValueError, match="at least one column"):
        store.training_frame(columns=[])
