"""PostgreSQL frames equal the DuckDB store's on the same records, however narrowed.

The PostgreSQL store copies only the records a frame can depend on; these tests pin
that the narrowing never changes a row or a feature: endpoint windows reaching back
before ``start``, ties in completion time, ``as_of`` cut-offs and workflows whose
earlier steps fall outside the window.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from feature_store import DuckDBStore, PostgresStore

pytestmark = pytest.mark.postgres

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def _records(n: int = 600) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    # Many ties in submission and completion times (whole seconds, as in traces logged
    # to the second): the frame SQL breaks them by request_id on both backends.
    seconds = rng.integers(0, 3600, n)
    out = []
    for i in range(n):
        submitted = T0 + timedelta(seconds=int(seconds[i]))
        latency = None if i % 17 == 0 else float(rng.integers(1, 400))
        workflow = f"w{rng.integers(0, 40)}" if i % 3 else None
        out.append(
            {
                "request_id": f"q{rng.integers(0, 10**6):06d}-{i}",
                "served_model": str(rng.choice(["m1", "m2"])),
                "device": str(rng.choice(["h100", "a100"])),
                "submitted_at": submitted.isoformat(),
                "prompt": f"prompt {i % 23}" if i % 2 else None,
                "output_tokens": int(rng.integers(0, 900)),
                "latency_s": latency,
                "workflow_id": workflow,
                "step": int(rng.integers(0, 6)) if workflow else None,
            }
        )
    return out


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return _records()


@pytest.fixture(scope="module")
def both(
    pg_module_url: str, records: list[dict[str, Any]]
) -> Iterator[tuple[DuckDBStore, PostgresStore]]:
    """Both stores holding ``records`` (read-only for the tests that share them)."""
    duck, pg = DuckDBStore(":memory:"), PostgresStore(pg_module_url)
    for store in (duck, pg):
        report = store.ingest_rows(records[:400], source="a")
        report = report + store.ingest_rows(records[300:], source="b")
        assert (report.accepted, report.duplicates) == (600, 100)
    yield duck, pg
    duck.close()
    pg.close()


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


CASES: list[dict[str, Any]] = [
    {},
    {"served_model": "m1"},
    {"served_model": "m2", "start": _at(20), "end": _at(40)},
    {"start": _at(30)},
    {"end": _at(25)},
    {"served_model": "m1", "start": _at(10), "end": _at(50), "as_of": _at(30)},
    {"start": _at(40), "end": _at(45), "as_of": _at(20), "require": ()},  # as_of < start
    {"served_model": "m2", "start": _at(15), "require": ()},
    {"served_model": "m1", "start": _at(5), "columns": ["request_id", "ep_completions"]},
]


@pytest.mark.parametrize("window", [1, 3, 50])
@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_frames_match_the_duckdb_store(
    both: tuple[DuckDBStore, PostgresStore], case: dict[str, Any], window: int
) -> None:
    duck, pg = both
    expected = duck.training_frame(**case, endpoint_window=window)
    got = pg.training_frame(**case, endpoint_window=window)
    assert got.schema == expected.schema
    assert got.to_pylist() == expected.to_pylist()
    assert got.num_rows > 0


def test_endpoint_stats_with_tied_completions_match_the_duckdb_store(pg_url: str) -> None:
    # Ten completions all finishing at T0 + 10 s: the window keeps the last ones by
    # request_id (byte order: "r10" < "r2"), as DuckDB does; medians to the last bit.
    rows = [
        {
            "request_id": f"r{i}",
            "served_model": "m",
            "device": "d",
            "submitted_at": (T0 + timedelta(seconds=i)).isoformat(),
            "latency_s": 10.0 - i,
            "output_tokens": 7 * i + 3,
        }
        for i in range(10)
    ] + [
        {
            "request_id": "r10",
            "served_model": "m",
            "device": "d",
            "submitted_at": T0.isoformat(),
            "latency_s": 10.0,
            "output_tokens": 1,
        }
    ]
    with DuckDBStore(":memory:") as duck, PostgresStore(pg_url) as pg:
        duck.ingest_rows(rows)
        pg.ingest_rows(rows)
        for window in (1, 2, 3, 4, 11):
            args = ("m", "d", T0 + timedelta(seconds=11), window)
            assert pg.endpoint_stats(*args) == duck.endpoint_stats(*args), window


def test_endpoint_stats_match_the_duckdb_store(both: tuple[DuckDBStore, PostgresStore]) -> None:
    duck, pg = both
    for minutes in (0, 1, 7.5, 20, 33, 61, 70):
        for model in ("m1", "m2"):
            for window in (1, 2, 5, 50):
                args = (model, "h100", _at(minutes), window)
                assert pg.endpoint_stats(*args) == duck.endpoint_stats(*args), args


def test_stats_match_the_duckdb_store(both: tuple[DuckDBStore, PostgresStore]) -> None:
    duck, pg = both
    a, b = duck.stats(), pg.stats()
    assert b.groups == a.groups
    assert (b.records, b.prompts, b.ingests) == (a.records, a.prompts, a.ingests)


def test_an_unknown_column_fails_before_any_query(pg_url: str) -> None:
    with PostgresStore(pg_url) as pg, pytest.raises(ValueError, match="unknown columns"):
        pg.training_frame(columns=["nope"])
