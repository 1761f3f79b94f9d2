"""``previous_calls`` gives the training frame's workflow features, on every backend.

The drift judge (and any serving path that judges stored records) reads a record's
workflow features with :meth:`RecordStore.previous_calls`; the model was trained on the
frame's ``wf_prev_*``. The two must agree row for row, or the judge forecasts later
workflow steps as first steps (a training/serving skew).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from feature_store import PreviousCall, RecordStore

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def call(rid: str, wf: str | None, step: int | None, at_s: float, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": rid,
        "served_model": extra.pop("served_model", "m"),
        "device": "h100",
        "submitted_at": (T0 + timedelta(seconds=at_s)).isoformat(),
        "workflow_id": wf,
        "step": step,
        "output_tokens": extra.pop("output_tokens", 10),
        "latency_s": extra.pop("latency_s", 2.0),
        **extra,
    }


def frame_previous(store: RecordStore) -> dict[str, PreviousCall]:
    """The frame's ``wf_prev_*`` of every record that has them."""
    cols = ["request_id", "wf_prev_output_tokens", "wf_prev_latency_s"]
    frame = store.training_frame(columns=cols, require=()).to_pylist()
    return {
        r["request_id"]: PreviousCall(
            output_tokens=r["wf_prev_output_tokens"], latency_s=r["wf_prev_latency_s"]
        )
        for r in frame
        if r["wf_prev_latency_s"] is not None
    }


def test_the_cases_the_frame_distinguishes(store: RecordStore) -> None:
    rows = [
        call("a0", "wa", 0, 0.0, output_tokens=40, latency_s=3.0),
        call("a1", "wa", 1, 5.0, output_tokens=7, latency_s=1.5),  # a0 done at 3 s
        call("a2", "wa", 2, 6.0),  # a1 finishes at 6.5 s: not yet done
        call("b0", "wb", 0, 0.0, latency_s=None),  # never completed
        call("b1", "wb", 1, 9.0),
        call("c0", "wa", 0, 0.0, served_model="other", output_tokens=1, latency_s=0.5),
        call("c1", "wa", 1, 1.0, served_model="other"),  # same workflow id, other model
        call("d0", None, None, 2.0),  # no workflow
        call("e1", "we", 1, 20.0, output_tokens=None),  # tie on step: by submission
        call("e2", "we", 1, 30.0),
    ]
    assert store.ingest_rows(rows).accepted == len(rows)
    got = store.previous_calls([r["request_id"] for r in rows] + ["unknown", "a1"])
    assert got == {
        "a1": PreviousCall(output_tokens=40, latency_s=3.0),
        "c1": PreviousCall(output_tokens=1, latency_s=0.5),
        "e2": PreviousCall(output_tokens=None, latency_s=2.0),
    }
    assert got == frame_previous(store)
    assert store.previous_calls([]) == {}
    assert store.previous_calls(["a2", "d0"]) == {}


def test_request_id_ties_break_in_byte_order(store: RecordStore) -> None:
    # Same workflow, step and submission: the order is the request id's bytes
    # ("B" < "a"), as DuckDB sorts text and PostgreSQL's "C" collation does, so z's
    # previous call is "a" (a locale's order would make it "B").
    rows = [
        call("a", "w", 0, 0.0, output_tokens=1, latency_s=0.5),
        call("B", "w", 0, 0.0, output_tokens=2, latency_s=0.25),
        call("z", "w", 1, 5.0),
    ]
    store.ingest_rows(rows)
    got = store.previous_calls(["a", "B", "z"])
    assert got == frame_previous(store)
    assert got["z"] == PreviousCall(output_tokens=1, latency_s=0.5)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_workflows_agree_with_the_frame(store: RecordStore, seed: int) -> None:
    rng = random.Random(seed)
    rows = []
    for w in range(40):
        at = rng.uniform(0, 600)
        for step in range(rng.randint(1, 6)):
            latency = rng.choice([None, rng.uniform(0.1, 20.0)])
            rows.append(call(f"w{w}s{step}", f"w{w}", step, at, latency_s=latency))
            at += rng.uniform(0.0, 15.0)  # sometimes before the previous call finished
    store.ingest_rows(rows)
    expected = frame_previous(store)
    assert 10 < len(expected) < len(rows)  # both kinds of rows occur
    wanted = rng.sample([r["request_id"] for r in rows], len(rows) // 2)
    got = store.previous_calls(wanted)
    assert got == {rid: expected[rid] for rid in wanted if rid in expected}
