from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from core import REQUIRED_FIELDS, CompletionRecord, Settings, field_specs

BASE = {
    "request_id": "r1",
    "served_model": "m",
    "device": "h100",
    "submitted_at": "2024-05-01T12:00:00+02:00",
}


def test_submitted_at_is_normalised_to_utc() -> None:
    r = CompletionRecord.model_validate({**BASE, "latency_s": 1.0})
    assert r.submitted_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert r.submitted_at.tzinfo == UTC


def test_records_are_frozen() -> None:
    r = CompletionRecord.model_validate(BASE)
    with pytest.raises(ValidationError):
        r.latency_s = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"latency_s": 0.0}, "latency_s"),
        ({"latency_s": float("inf")}, "latency_s"),
        ({"kv_cache_util": 1.5}, "kv_cache_util"),
        ({"input_tokens": -1}, "input_tokens"),
        ({"prefill_tokens_in_flight": -1}, "prefill_tokens_in_flight"),
        ({"decode_tokens_in_flight": 1.5}, "decode_tokens_in_flight"),
        ({"submitted_at": "2024-05-01T12:00:00"}, "submitted_at"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_fields_are_named(extra: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        CompletionRecord.model_validate({**BASE, **extra})
    assert field in str(info.value)


@pytest.mark.parametrize(
    "extra",
    [{"cached_tokens": 10, "input_tokens": 5}, {"ttft_s": 2.0, "latency_s": 1.0}],
)
def test_cross_field_rules(extra: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="must be <="):
        CompletionRecord.model_validate({**BASE, **extra})


def test_field_specs_mirror_the_model() -> None:
    specs = {s.name: s for s in field_specs()}
    assert tuple(n for n, s in specs.items() if s.required) == REQUIRED_FIELDS
    assert REQUIRED_FIELDS == ("request_id", "served_model", "device", "submitted_at")
    assert specs["latency_s"].gt == 0
    assert specs["kv_cache_util"].le == 1
    assert specs["step"].kind == "int"
    assert specs["submitted_at"].kind == "timestamp"


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("TAILCAST_HOME", "/srv/tc")
    monkeypatch.setenv("TAILCAST_API_TOKEN", "s3cret")
    s = Settings()
    assert str(s.store_path) == "/srv/tc/store.duckdb"
    assert s.optuna_storage == "sqlite:////srv/tc/optuna.db"
    assert s.api_token is not None
    assert s.api_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
