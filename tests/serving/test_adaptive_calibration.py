"""The service keeps its quantiles calibrated between retrainings (adaptive conformal).

A real app (``create_app`` + TestClient, real DuckDB store, real MLflow registry on
SQLite) serves a tiny champion whose forecast does not depend on the endpoint's history
(so the forecast the judge recomputes for a completion is the one served). Completions
1.6x slower than the champion's own distribution are posted to ``/v1/completions``;
``/v1/forecasts`` then answers higher quantiles, whose coverage of the posted latencies
moves to 0.9, while the drift monitor still judges the model's own forecasts. The
offsets survive a restart, another replica applies them, a setting turns them off, and
an unreadable stored document is ignored.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from core.predictor import Predictor, PredictorSpec
from feature_store import DuckDBStore
from registry import MLflowRegistry
from serving import ServingConfig, create_app
from serving._calibration import CALIBRATION_KEY
from serving._drift import DriftService
from serving._forecast import forecast_group
from serving._state import ServiceState
from serving.schemas import ForecastRequest

if TYPE_CHECKING:  # mypy maps tests/serving/*.py to top-level modules (no __init__.py)
    from _fixtures import DEVICE, LEVELS, SERVED, completion, new_registry, settings, wait_until
else:
    from tests.serving._fixtures import (
        DEVICE,
        LEVELS,
        SERVED,
        completion,
        new_registry,
        settings,
        wait_until,
    )

pytestmark = pytest.mark.slow

SLOWER = 1.6  # the endpoint got this much slower than the champion forecasts
ROUND = 20  # completions posted per round (each round is served the offsets before it)
INPUT_TOKENS = 800
Q = "0.9"


def _predictor() -> Predictor:
    """A tiny real predictor of input tokens only (no endpoint features)."""
    rng = np.random.default_rng(3)
    spec = PredictorSpec(
        served_models=(SERVED,),
        numeric=("log_input_tokens",),
        devices=(DEVICE,),
        hidden=(8,),
        levels=LEVELS,
    )
    arrays = {
        "num_mean": np.array([6.0]),
        "num_std": np.array([1.5]),
        "layer0_W": rng.normal(size=(3, 8)),
        "layer0_b": rng.normal(size=8),
        "head_W": rng.normal(size=(8, len(LEVELS))) * 0.05,
        "head_b": np.array([0.5, *[-1.0] * (len(LEVELS) - 1)]),
    }
    return Predictor(spec, arrays)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> MLflowRegistry:
    """tailcast-chat v1 (the predictor above), champion."""
    reg = new_registry(tmp_path_factory.mktemp("registry"))
    version = reg.log_training(
        SERVED,
        _predictor(),
        params={"hidden": (8,)},
        metrics={"mean_pinball": 0.25},
        artifacts={},
        input_example=pd.DataFrame(
            {"served_model": [SERVED], "device": [DEVICE], "input_tokens": [INPUT_TOKENS]}
        ),
    )
    reg.promote(SERVED, version.version)
    return reg


@pytest.fixture(autouse=True)
def _no_tailcast_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("TAILCAST_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def app_of(registry: MLflowRegistry) -> Callable[..., Any]:
    """``app_of(home, **config)``: the app on ``home`` (its store file there)."""

    def build(home: Path, store: DuckDBStore | None = None, **config: Any) -> Any:
        cfg = ServingConfig(calibration_refresh_s=0.2, **config)
        return create_app(settings(home, registry), registry=registry, store=store, config=cfg)

    return build


@pytest.fixture
def client(app_of: Callable[..., Any], tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(app_of(tmp_path / "home")) as c:
        _ready(c)
        yield c


def _service(client: TestClient) -> ServiceState:
    state: ServiceState = client.app.state.service  # type: ignore[attr-defined]
    return state


def _drift(client: TestClient) -> DriftService:
    drift: DriftService = client.app.state.drift  # type: ignore[attr-defined]
    return drift


def _ready(client: TestClient) -> None:
    """The champion is loaded; no OOD report child is spawned by these tests."""
    wait_until(lambda: _service(client).models.get(SERVED) is not None)
    _drift(client).reports = False


def _served(client: TestClient) -> dict[str, float]:
    """The served quantiles (seconds) of the stream's request, by level."""
    res = client.post(
        "/v1/forecasts",
        json={
            "requests": [{"served_model": SERVED, "device": DEVICE, "input_tokens": INPUT_TOKENS}],
            "quantiles": list(LEVELS),
        },
    )
    assert res.status_code == 200, res.text
    out: dict[str, float] = res.json()["forecasts"][0]["quantiles"]
    return out


def _own(client: TestClient) -> dict[str, float]:
    """The champion's own quantiles of the stream's request (no offsets)."""
    service = _service(client)
    model = service.models.get(SERVED)
    assert model is not None
    item = ForecastRequest(served_model=SERVED, device=DEVICE, input_tokens=INPUT_TOKENS)
    (answer,) = forecast_group(model, [item], LEVELS, None, service.endpoints.get)
    own: dict[str, float] = answer["quantiles"]
    return own


def _stream(
    client: TestClient, own: dict[str, float], rounds: int, seed: int = 0, start: int = 0
) -> tuple[list[float], list[float]]:
    """Post ``rounds`` rounds of completions 1.6x slower than ``own``; (served q0.9, y) each.

    Each latency is 1.6 times a draw from the champion's own distribution (inverse CDF
    interpolated on its grid), so its own 0.9 quantile covers ``P(X <= q / 1.6)``.
    """
    rng = np.random.default_rng(seed)
    grid = np.array([own[str(q)] for q in LEVELS])
    served: list[float] = []
    observed: list[float] = []
    for r in range(start, start + rounds):
        q09 = _served(client)[Q]  # what requests of this round were given
        ys = SLOWER * np.interp(rng.uniform(size=ROUND), LEVELS, grid)
        items = [
            completion(
                f"r{r}-{i}",
                input_tokens=INPUT_TOKENS,
                latency_s=float(y),
                submitted_at=f"2026-01-01T12:{r // 60:02d}:{r % 60:02d}Z",
            )
            for i, y in enumerate(ys)
        ]
        res = client.post("/v1/completions", json={"completions": items})
        assert res.status_code == 200, res.text
        _drift(client).flush()
        served += [q09] * ROUND
        observed += ys.tolist()
    return served, observed


def _coverage(served: list[float], observed: list[float]) -> float:
    return float(np.mean(np.asarray(observed) <= np.asarray(served)))


def _monitor(client: TestClient) -> list[tuple[str, int, dict[str, float]]]:
    return [(g.state, g.n, g.statistics) for g in _drift(client).monitor.states()]


def test_slower_completions_raise_the_served_quantiles_back_to_their_coverage(
    client: TestClient, app_of: Callable[..., Any], tmp_path: Path
) -> None:
    own = _own(client)
    assert _served(client) == pytest.approx(own, rel=1e-12)  # nothing learned yet
    served, observed = _stream(client, own, rounds=25)
    own_coverage = _coverage([own[Q]] * len(observed), observed)
    assert own_coverage < 0.8  # the champion's own 0.9 quantile misses the slow-down
    first = _coverage(served[:100], observed[:100])
    last = _coverage(served[-200:], observed[-200:])
    assert abs(last - 0.9) < 0.08, (own_coverage, first, last)
    assert abs(last - 0.9) < abs(own_coverage - 0.9) - 0.05
    now = _served(client)
    assert all(now[str(q)] > own[str(q)] for q in LEVELS)  # every level moved up
    assert [now[str(q)] for q in LEVELS] == sorted(now[str(q)] for q in LEVELS)
    assert now[Q] / own[Q] == pytest.approx(SLOWER, rel=0.25)
    # The monitor judged the model's own forecasts: the same statistics as a service
    # that serves no offsets, given the same completions.
    with_offsets = _monitor(client)
    ((state, n, stats),) = with_offsets
    assert (state, n) == ("ood", len(observed))  # it alarms on the model's own miss
    assert stats["coverage_90"] == pytest.approx(own_coverage, abs=0.02)
    with TestClient(app_of(tmp_path / "off", adaptive_calibration=False)) as off:
        _ready(off)
        off_served, _ = _stream(off, own, rounds=25)
        assert off_served == pytest.approx([own[Q]] * len(observed), rel=1e-12)
        assert _served(off) == pytest.approx(own, rel=1e-12)
        assert _monitor(off) == with_offsets
        stored = _service(off).store.load_drift_state()
        assert CALIBRATION_KEY not in stored  # off: nothing learned, nothing saved


def test_a_restart_continues_the_same_offsets(app_of: Callable[..., Any], tmp_path: Path) -> None:
    home = tmp_path / "home"
    with TestClient(app_of(home)) as first:
        _ready(first)
        own = _own(first)
        _stream(first, own, rounds=10)
        before = _service(first).calibration.calibrator.to_dict()
        served_before = _served(first)
        assert before["shared"][SERVED]["n"] == 10 * ROUND
    with TestClient(app_of(home)) as again:
        _ready(again)
        wait_until(lambda: _drift(again).is_judge)
        calibration = _service(again).calibration
        assert calibration.calibrator.to_dict() == before
        assert calibration.versions() == {SERVED: "1"}
        assert _served(again) == pytest.approx(served_before, rel=1e-12)
        # ... and goes on from them.
        _stream(again, own, rounds=1, start=10)
        assert calibration.calibrator.to_dict()["shared"][SERVED]["n"] == 11 * ROUND


def test_a_replica_that_does_not_judge_serves_the_judges_offsets(
    app_of: Callable[..., Any], tmp_path: Path
) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    try:
        with (
            TestClient(app_of(tmp_path / "a", store=store)) as a,
            TestClient(app_of(tmp_path / "b", store=store)) as b,
        ):
            for c in (a, b):
                _ready(c)
            judge, other = wait_until(
                lambda: (a, b) if _drift(a).is_judge else (b, a) if _drift(b).is_judge else None
            )
            own = _own(judge)
            _stream(judge, own, rounds=5)
            learned = _served(judge)
            assert learned[Q] > own[Q]
            # Within the refresh period (0.2 s here) the other replica serves the same.
            wait_until(lambda: _served(other) == pytest.approx(learned, rel=1e-12), timeout_s=10.0)
            assert not _drift(other).is_judge
            assert _drift(other).observed == 0
    finally:
        store.close()


@pytest.mark.parametrize(
    "document",
    [
        "{not json",
        json.dumps({"format": 99, "groups": {}, "shared": {}, "versions": {SERVED: "1"}}),
        json.dumps(
            {
                "format": 1,
                "groups": {},
                "shared": {SERVED: {"levels": [0.5], "offsets": ["x"], "n": 1}},
                "versions": {SERVED: "1"},
            }
        ),
    ],
    ids=["corrupt", "foreign-format", "malformed-term"],
)
def test_an_unreadable_stored_document_is_ignored_with_a_warning(
    app_of: Callable[..., Any],
    tmp_path: Path,
    document: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    store.save_drift_state({CALIBRATION_KEY: document})
    try:
        with caplog.at_level(logging.WARNING), TestClient(app_of(tmp_path, store=store)) as c:
            _ready(c)
            wait_until(lambda: _drift(c).is_judge)
            assert _served(c) == pytest.approx(_own(c), rel=1e-12)  # a fresh start
            messages = [r.getMessage() for r in caplog.records]
            assert any("stored calibration offsets ignored" in m for m in messages)
            # The monitor never took the document for a group's state.
            assert not any(CALIBRATION_KEY in m and "not restored" in m for m in messages)
            _stream(c, _own(c), rounds=1)
            assert CALIBRATION_KEY in store.load_drift_state()  # replaced by a readable one
            assert json.loads(store.load_drift_state()[CALIBRATION_KEY])["format"] == 1
    finally:
        store.close()


def test_offsets_of_another_champion_version_are_dropped(
    app_of: Callable[..., Any], tmp_path: Path
) -> None:
    levels = list(LEVELS)
    term = {"levels": levels, "offsets": [0.5] * len(levels), "n": 100}
    document = {
        "format": 1,
        "groups": {f"{SERVED}|none|{DEVICE}": term},
        "shared": {SERVED: term},
        "versions": {SERVED: "7"},  # learned for a champion no longer served
    }
    store = DuckDBStore(tmp_path / "store.duckdb")
    store.save_drift_state({CALIBRATION_KEY: json.dumps(document)})
    try:
        with TestClient(app_of(tmp_path, store=store)) as c:
            _ready(c)
            wait_until(lambda: _drift(c).is_judge)
            assert _service(c).calibration.calibrator.served_models() == []
            assert _served(c) == pytest.approx(_own(c), rel=1e-12)
    finally:
        store.close()
