"""``ingest_columns`` (typed columns) and ``ingest_rows`` (untrusted rows) agree.

The typed path skips the per-value checks of a column whose values all have their
field's Python type; every row must still be stored, rejected (same field, same reason)
or counted a duplicate exactly as the row-by-row path does it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import IngestReport
from feature_store import DuckDBStore, columns_table

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
NEG_NAN = math.copysign(math.nan, -1.0)


def _row(i: int, **values: Any) -> dict[str, Any]:
    row = {
        "request_id": f"r{i}",
        "served_model": "m",
        "device": "d",
        "input_tokens": 100 + i,
        "output_tokens": 10 + i,
        "latency_s": 1.0 + i / 8,
        "ttft_s": 0.1,
        "submitted_at": T0 + timedelta(seconds=i),
    }
    row.update(values)
    return {k: v for k, v in row.items() if v is not ...}


#: A batch mixing valid rows with every kind of unusable value (one column each).
MIXED: list[dict[str, Any]] = [
    _row(0),
    _row(1, latency_s=-1.0),  # a bound, checked in SQL
    _row(2, latency_s=math.nan),  # not finite, checked in SQL
    _row(3, latency_s=NEG_NAN),  # "-nan" in DuckDB, "nan" as text
    _row(4, latency_s=math.inf, ttft_s=-math.inf),
    _row(5, input_tokens=2**63),  # beyond 64 bits
    _row(6, input_tokens=-(2**63)),  # fits int64, refused as text
    _row(7, output_tokens=True),  # a bool is no number
    _row(8, output_tokens=2.5),  # a float among ints
    _row(9, request_id="a\ud800"),  # a lone surrogate
    _row(10, request_id="x" * 300),  # longer than 256 characters
    _row(11, prompt="p" * 1_000_001),  # an over-long prompt
    _row(12, served_model=["m"]),  # not a scalar
    _row(13, device=b"d"),  # bytes
    _row(14, submitted_at=datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))),
    _row(15, submitted_at="soon"),  # text among datetimes
    _row(16, ttft_s=9.0),  # a cross-field rule
    _row(17, request_id=...),  # a required field missing
    _row(18, input_tokens=False, output_tokens=[1]),  # two problems: the first column's wins
    _row(19, kv_cache_util=-0.0, step=2**53 + 1),
    _row(0),  # a duplicate within the batch
    _row(20, latency_s=None, ttft_s=None),
    _row(21, request_id=7),  # an int where text goes
    _row(22, input_tokens=-1, ttft_s=[]),  # a value refused before the SQL bounds
]


def as_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """``rows`` as columns, the columns in the order their keys first appear."""
    names = list(dict.fromkeys(k for row in rows for k in row))
    return {name: [row.get(name) for row in rows] for name in names}


@pytest.fixture
def stores() -> Iterator[tuple[DuckDBStore, DuckDBStore]]:
    with DuckDBStore(":memory:") as typed, DuckDBStore(":memory:") as generic:
        yield typed, generic


def stored(store: DuckDBStore) -> list[dict[str, Any]]:
    frame = store.training_frame(require=())
    return sorted(frame.to_pylist(), key=lambda r: str(r["request_id"]))


def both(
    stores: tuple[DuckDBStore, DuckDBStore], rows: Sequence[Mapping[str, Any]]
) -> tuple[IngestReport, IngestReport]:
    typed, generic = stores
    return typed.ingest_columns(as_columns(rows), "s"), generic.ingest_rows(rows, "s")


def test_a_mixed_batch_is_stored_and_rejected_alike(
    stores: tuple[DuckDBStore, DuckDBStore],
) -> None:
    fast, slow = both(stores, MIXED)
    assert fast == slow
    assert stored(stores[0]) == stored(stores[1])
    reasons = {r.index: (r.field, r.reason) for r in fast.rejected}
    assert reasons[3] == ("latency_s", "not a finite number: nan")
    assert reasons[6][0] == "input_tokens"
    assert reasons[6][1].startswith("out of range")
    assert reasons[9] == ("request_id", "not valid Unicode: lone surrogate U+D800 at character 1")
    assert reasons[18] == ("input_tokens", "expected a string or number, got bool")
    assert fast.accepted == 3
    assert fast.duplicate_indices == (20,)
    assert reasons[23] == ("ttft_s", "expected a string or number, got list")
    # and again: every valid row is a duplicate now, the rejections are the same
    assert both(stores, MIXED)[0] == both(stores, MIXED)[1]


#: One unusual value each, in a column otherwise clean (so it takes the typed path).
EDGES: list[tuple[str, Any]] = [
    ("input_tokens", -(2**63)),  # held by int64, refused as text
    ("input_tokens", 2**63 - 1),
    ("input_tokens", 2**63),
    ("num_running", -1),
    ("latency_s", NEG_NAN),
    ("latency_s", math.nan),
    ("latency_s", -math.inf),
    ("latency_s", 1e300),
    ("kv_cache_util", -0.0),
    ("kv_cache_util", 5e-324),
    ("request_id", "a\ud800"),
    ("request_id", " \x00 "),
    ("request_id", "r" * 257),
    ("prompt", "p" * 1_000_001),
    ("prompt", "caf\u00e9"),
    ("submitted_at", datetime(1, 1, 1, tzinfo=UTC)),
    ("submitted_at", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ("submitted_at", datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))),
    ("submitted_at", datetime(2026, 1, 1)),  # naive
    ("ttft_s", 1e-9),
]


@pytest.mark.parametrize(("name", "value"), EDGES)
def test_an_edge_value_in_a_typed_column_has_the_outcome_of_its_row(
    stores: tuple[DuckDBStore, DuckDBStore], name: str, value: Any
) -> None:
    rows = [_row(0, prompt="x"), _row(1, **{name: value}), _row(2, prompt=None)]
    fast, slow = both(stores, rows)
    assert fast == slow
    assert stored(stores[0]) == stored(stores[1])


def test_clean_columns_are_typed_and_others_text() -> None:
    table = columns_table(as_columns([_row(0), _row(1, output_tokens="11")]))
    assert table.schema.field("input_tokens").type == "int64"
    assert table.schema.field("latency_s").type == "double"
    assert str(table.schema.field("submitted_at").type) == "timestamp[us, tz=UTC]"
    assert table.schema.field("output_tokens").type == "string"  # a str among ints
    assert table.schema.field("prompt").type == "string"  # absent: nulls
    assert table.column("_line").to_pylist() == [1, 2]


def test_unknown_or_ragged_columns_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown columns"):
        columns_table({"request_id": ["a"], "colour": ["red"]})
    with pytest.raises(ValueError, match="lengths"):
        columns_table({"request_id": ["a"], "device": []})


_VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([NEG_NAN, -0.0, 2**63, -(2**63), True, [], b"x", "a\ud800", "", " "]),
    st.text(max_size=4),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3))])),
)
_FIELDS = ("input_tokens", "latency_s", "ttft_s", "kv_cache_util", "device", "submitted_at")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=3), max_size=6))
def test_any_values_are_stored_and_rejected_alike(changes: list[dict[str, Any]]) -> None:
    rows = [_row(i, **change) for i, change in enumerate(changes)]
    with DuckDBStore(":memory:") as typed, DuckDBStore(":memory:") as generic:
        fast, slow = both((typed, generic), rows)
        assert fast == slow
        assert stored(typed) == stored(generic)
