"""Whole numbers in API bodies follow JSON Schema's ``integer``: 12 and 12.0, never 12.5."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from core import MAX_COUNT
from serving.compat.schemas import PredictionRequest
from serving.schemas import ForecastRequest

BASE = {"served_model": "m", "device": "d"}


@pytest.mark.parametrize(
    ("given", "stored"), [(12, 12), (12.0, 12), (0, 0), (MAX_COUNT, MAX_COUNT)]
)
def test_whole_numbers_are_counts(given: float, stored: int) -> None:
    body = json.dumps({**BASE, "input_tokens": given})
    assert ForecastRequest.model_validate_json(body).input_tokens == stored


@pytest.mark.parametrize("given", [12.5, True, "12", -1, MAX_COUNT + 1, 1e300])
def test_other_values_are_no_counts(given: object) -> None:
    with pytest.raises(ValidationError):
        ForecastRequest.model_validate_json(json.dumps({**BASE, "input_tokens": given}))


def test_llmd_counts_follow_the_same_rule() -> None:
    fields = PredictionRequest.model_fields
    name = next(n for n, f in fields.items() if f.annotation is int and f.is_required())
    example = {n: 0.5 if f.annotation is float else 1 for n, f in fields.items() if f.is_required()}
    assert getattr(PredictionRequest.model_validate({**example, name: 3.0}), name) == 3
    with pytest.raises(ValidationError):
        PredictionRequest.model_validate({**example, name: True})
