"""The bar: every command works on a home while ``tailcast serve`` runs on it.

A real service (port from the OS) owns the embedded DuckDB store; on the same home the
real console script ingests the agentic calls, prints store stats, trains, retrains,
lists models, evaluates the champion and promotes an older version, the store work all
through the service (DuckDB allows one writer process). The service serves each
promoted champion and counts the ingested rows.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from feature_store import broker_path

if TYPE_CHECKING:  # mypy maps tests/<pkg>/*.py to top-level modules (no __init__.py)
    from _broker_fixtures import serving, tailcast
else:
    from tests.serving._broker_fixtures import serving, tailcast

ROOT = Path(__file__).resolve().parents[2]
CALLS = ROOT.parent / "shared" / "data" / "agentic" / "minisweagent_calls.csv.gz"
TOKEN = "bar-token"


def get(url: str, token: str | None = TOKEN) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        return json.loads(r.read())


def ok(*args: str, home: Path) -> dict[str, Any]:
    """Run ``tailcast <args> --json`` on ``home``; exit 0 and its JSON document."""
    out = tailcast(*args, "--json", home=home, token=TOKEN)
    assert out.returncode == 0, f"tailcast {' '.join(args)}:\n{out.stderr[-3000:]}"
    document: dict[str, Any] = json.loads(out.stdout)
    return document


def served_version(url: str, served_model: str, timeout_s: float = 60) -> int | None:
    """The version the service loads for ``served_model`` once it is its champion."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for m in get(f"{url}/v1/models")["models"]:
            champion = m["aliases"].get("champion")
            if m["served_model"] == served_model and m["loaded_version"] == champion:
                return int(champion)
        time.sleep(0.5)
    return None


@pytest.mark.slow
@pytest.mark.shared_data
def test_every_command_works_while_the_service_runs_on_the_home(tmp_path: Path) -> None:
    assert CALLS.exists(), f"shared data missing: {CALLS}"
    home = tmp_path / "home"
    args = ("--poll-interval", "0.5", "--no-llmd-retrain", "--no-drift-retrain")
    with serving(home, *args, token=TOKEN) as service:
        ingested = ok("ingest", str(CALLS), home=home)
        assert ingested["accepted"] > 11_000
        assert ingested["accepted"] + ingested["duplicates"] + ingested["rejected"] == 12_112
        stats = ok("store", "stats", home=home)
        assert stats["records"] == ingested["accepted"]
        served = max(stats["groups"], key=lambda g: g["records"])["served_model"]

        trained = ok("train", "--served-model", served, "--trials", "2", "--cross-fit", "0",
                     home=home)  # fmt: skip
        assert (trained["version"], trained["promoted"]) == (1, True)
        retrained = ok("pipeline", "retrain", "--served-model", served, "--policy", "always",
                       home=home)  # fmt: skip
        assert (retrained["version"], retrained["promoted"]) == (2, True)
        listed = ok("models", "list", home=home)
        assert {v["version"] for v in listed["versions"]} == {1, 2}

        assert served_version(service.url, served) == 2
        scored = ok("evaluate", "--served-model", served, "--data", str(CALLS), home=home)
        assert scored, "evaluate printed an empty document"
        ok("models", "promote", "--served-model", served, "--version", "1", home=home)
        assert served_version(service.url, served) == 1  # the service follows the alias
        assert get(f"{service.url}/v1/store/stats")["records"] == ingested["accepted"]
        assert ok("store", "stats", home=home)["records"] == ingested["accepted"]
    assert not broker_path(home / "store.duckdb").exists()  # withdrawn at shutdown


@pytest.mark.slow
def test_run_on_a_home_a_service_already_serves_says_so_and_exits(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with serving(home, "--no-llmd-retrain", "--no-drift-retrain", token=TOKEN) as service:
        out = tailcast("run", "--records", "500", home=home, token=TOKEN)
        assert out.returncode == 0, out.stderr
        message = " ".join(out.stderr.split())
        assert f"already serves this home at {service.url}" in message
        assert get(f"{service.url}/v1/store/stats")["records"] == 0  # nothing else started
