"""``ServedCalibration``: the service's adaptive conformal offsets, without the app.

A real tiny predictor and a real DuckDB store; the app-level behaviour (judge, restart,
replicas, setting) is in ``test_adaptive_calibration.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pytest

from core.drift import DriftGroup
from drift import apply_offsets
from feature_store import DuckDBStore
from registry import ModelVersion
from serving._calibration import CALIBRATION_KEY, ServedCalibration
from serving._models import LoadedModel

if TYPE_CHECKING:  # mypy maps tests/serving/*.py to top-level modules (no __init__.py)
    from _fixtures import DEVICE, LEVELS, SERVED, tiny_predictor
else:
    from tests.serving._fixtures import DEVICE, LEVELS, SERVED, tiny_predictor

OTHER_DEVICE = "a100"


def _model(version: int = 1) -> LoadedModel:
    now = datetime.now(UTC)
    mv = ModelVersion(
        name=f"tailcast-{SERVED}",
        version=version,
        aliases=("champion",),
        run_id=None,
        created_at=now,
    )
    return LoadedModel(SERVED, tiny_predictor(SERVED), mv, now)


def _group(device: str = DEVICE, prompt_class: str = "default") -> DriftGroup:
    return DriftGroup(served_model=SERVED, prompt_class=prompt_class, device=device)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    with DuckDBStore(tmp_path / "store.duckdb") as s:
        yield s


def _grid(n: int) -> npt.NDArray[np.float64]:
    base = np.array([1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 5.0])
    return np.tile(base, (n, 1)) * np.linspace(1.0, 2.0, n)[:, None]


def _learn(
    cal: ServedCalibration, model: LoadedModel, group: DriftGroup, n: int, slower: float
) -> None:
    values = _grid(n)
    observed = values[:, 4] * slower  # every 0.9 quantile missed by ``slower``
    cal.observe(model, values, [group] * n, observed)


def test_a_batch_gets_the_offsets_of_each_rows_group(store: DuckDBStore) -> None:
    cal = ServedCalibration(store)
    model = _model()
    values = _grid(6)
    assert cal.adjust(model, values, ["none"] * 6, [None] * 6, [DEVICE] * 6) is values
    _learn(cal, model, _group(), 80, 2.0)  # past warm-up: the group term applies too
    _learn(cal, model, _group(OTHER_DEVICE), 10, 0.5)
    classes: list[str | None] = [None, "x", None, None, "x", None]
    given: list[str | None] = [None, None, "y", None, None, None]
    devices = [DEVICE, DEVICE, DEVICE, OTHER_DEVICE, DEVICE, DEVICE]
    out = cal.adjust(model, values, classes, given, devices)
    for i, (c, g, d) in enumerate(zip(classes, given, devices, strict=True)):
        offsets = cal.calibrator.offsets(_group(d, c or g or "default"), LEVELS)
        np.testing.assert_allclose(out[i], apply_offsets(values[i], offsets), rtol=1e-15)
    assert np.all(np.diff(out, axis=1) >= 0)
    assert out[0, 4] > values[0, 4]  # the slow group is raised
    assert out[0, 4] / values[0, 4] > out[1, 4] / values[1, 4]  # more than a new group


def test_a_new_champion_version_starts_at_zero(store: DuckDBStore) -> None:
    cal = ServedCalibration(store)
    v1, v2 = _model(1), _model(2)
    _learn(cal, v1, _group(), 30, 2.0)
    assert cal.versions() == {SERVED: "1"}
    values = _grid(1)
    assert cal.adjust(v2, values, [None], [None], [DEVICE]) is values  # not learned for v2
    _learn(cal, v2, _group(), 3, 1.0)
    assert cal.versions() == {SERVED: "2"}
    assert cal.calibrator.to_dict()["shared"][SERVED]["n"] == 3
    assert cal.adjust(v1, values, [None], [None], [DEVICE]) is values


def test_the_document_round_trips_and_is_saved_only_when_changed(store: DuckDBStore) -> None:
    cal = ServedCalibration(store)
    _learn(cal, _model(), _group(), 20, 1.7)
    text = cal.document()
    assert text is not None
    cal.saved(text)
    assert cal.document() is None
    again = ServedCalibration(store)
    again.restore(text, lambda served_model: "1")
    assert again.calibrator.to_dict() == cal.calibrator.to_dict()
    assert again.versions() == {SERVED: "1"}
    stale = ServedCalibration(store)
    stale.restore(text, lambda served_model: "2")  # another champion now
    assert stale.calibrator.served_models() == []
    assert stale.versions() == {}


def test_only_a_replica_that_does_not_judge_refreshes(store: DuckDBStore) -> None:
    judge = ServedCalibration(store)
    judge.restore(None, lambda served_model: "1")
    _learn(judge, _model(), _group(), 20, 1.7)
    text = judge.document()
    assert text is not None
    store.save_drift_state({CALIBRATION_KEY: text})
    other = ServedCalibration(store, refresh_s=0.05)
    assert other.refresh()
    assert not other.refresh()  # unchanged
    assert other.calibrator.to_dict() == judge.calibrator.to_dict()
    assert not judge.refresh()  # the judge keeps its own, newer offsets
    judge.release()
    assert judge.refresh()
    other.start()
    other.stop()


def test_off_leaves_forecasts_and_the_store_alone(store: DuckDBStore) -> None:
    cal = ServedCalibration(store, enabled=False)
    model = _model()
    _learn(cal, model, _group(), 20, 2.0)
    assert cal.calibrator.served_models() == []
    assert cal.document() is None
    values = _grid(2)
    assert cal.adjust(model, values, [None] * 2, [None] * 2, [DEVICE] * 2) is values
    with pytest.raises(ValueError, match="refresh_s"):
        ServedCalibration(store, refresh_s=0.0)
