"""The deployment manifests in the docs name real commands, flags, settings and metrics.

Every YAML block of ``docs/deploy.md`` and ``docs/retraining.md`` is parsed; each
container command that runs ``tailcast`` must resolve to a CLI command whose options
include every flag given, each ``mlflow server`` flag must be one of MLflow's, every
``TAILCAST_*`` variable must be a field of :class:`core.Settings` or of the retraining
job's configuration, and every ``tailcast_*`` metric a query names must be exported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from core import Settings
from pipelines.cli import app
from pipelines.retrain import RetrainConfig
from serving._metrics import ServiceMetrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ("deploy.md", "retraining.md")
_YAML = re.compile(r"```yaml\n(.*?)```", re.DOTALL)


def documents(page: str) -> list[Any]:
    text = (DOCS / page).read_text()
    return [d for block in _YAML.findall(text) for d in yaml.safe_load_all(block) if d]


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping inside ``node``, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def containers(page: str) -> list[dict[str, Any]]:
    found = []
    for doc in documents(page):
        for node in walk(doc):
            for c in node.get("containers", []) if isinstance(node.get("containers"), list) else []:
                found.append(c)
    return found


def argv(container: dict[str, Any]) -> list[str]:
    """The container's argv; a tailcast image with only ``args`` runs ``tailcast``."""
    command = [str(a) for a in container.get("command", [])]
    args = [str(a) for a in container.get("args", [])]
    return command + args if command else ["tailcast", *args]


def resolve(group: Any, words: list[str]) -> tuple[Any, list[str]]:
    """Follow sub-command words from ``group``; the command reached and the rest.

    Duck-typed: typer ships its own copy of click, so its groups are not
    ``click.Group`` instances (MLflow's are).
    """
    command, rest = group, list(words)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"unknown command {name!r} (known: {sorted(command.commands)})"
        command = sub
    return command, rest


def flags(command: Any) -> set[str]:
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}


def given_flags(rest: list[str]) -> list[str]:
    return [w.split("=", 1)[0] for w in rest if w.startswith("--")]


def env_names(page: str) -> set[str]:
    names: set[str] = set()
    for doc in documents(page):
        for node in walk(doc):
            if ("value" in node or "valueFrom" in node) and str(node.get("name")).startswith(
                "TAILCAST_"
            ):
                names.add(str(node["name"]))
            if node.get("kind") in ("Secret", "ConfigMap"):
                data = node.get("stringData") or node.get("data") or {}
                names.update(k for k in data if k.startswith("TAILCAST_"))
    return names


def known_env() -> set[str]:
    core = {f"TAILCAST_{name.upper()}" for name in Settings.model_fields}
    retrain = {f"TAILCAST_RETRAIN_{name.upper()}" for name in RetrainConfig.model_fields}
    return core | retrain


@pytest.mark.parametrize("page", PAGES)
def test_tailcast_commands_and_flags_exist(page: str) -> None:
    cli = typer.main.get_command(app)
    runs = [argv(c) for c in containers(page)]
    tailcast_runs = [a for a in runs if a[0] == "tailcast"]
    assert tailcast_runs, f"no tailcast container in {page}"
    for words in tailcast_runs:
        command, rest = resolve(cli, words[1:])
        assert not hasattr(command, "commands"), f"{words} names a group, not a command"
        unknown = sorted(set(given_flags(rest)) - flags(command))
        assert not unknown, f"{' '.join(words)}: unknown flags {unknown}"


def test_mlflow_server_flags_exist() -> None:
    from mlflow.cli import cli as mlflow_cli

    runs = [argv(c) for c in containers("deploy.md") if argv(c)[0] == "mlflow"]
    assert runs, "deploy.md has no MLflow server"
    for words in runs:
        command, rest = resolve(mlflow_cli, words[1:])
        unknown = sorted(set(given_flags(rest)) - flags(command))
        assert not unknown, f"{' '.join(words)}: unknown flags {unknown}"


@pytest.mark.parametrize("page", PAGES)
def test_environment_names_are_settings(page: str) -> None:
    names = env_names(page)
    assert names, f"no TAILCAST_* variable in {page}"
    unknown = sorted(names - known_env())
    assert not unknown, f"{page} names unknown settings {unknown}"


def test_the_cluster_uses_the_postgres_store_and_a_shared_registry() -> None:
    names = env_names("deploy.md")
    assert {"TAILCAST_STORE_URL", "TAILCAST_MLFLOW_TRACKING_URI"} <= names
    assert "TAILCAST_OPTUNA_STORAGE" in names
    kinds = {d.get("kind") for d in documents("deploy.md")}
    assert {"Deployment", "Service", "CronJob", "ScaledObject", "Secret"} <= kinds


def test_metrics_in_queries_are_exported() -> None:
    exported = {m.name for m in ServiceMetrics().registry.collect()}
    queries = [
        str(node["query"])
        for doc in documents("deploy.md")
        for node in walk(doc)
        if "query" in node
    ]
    assert queries
    for query in queries:
        for name in re.findall(r"tailcast_[a-z_]+", query):
            base = name.removesuffix("_total")
            assert base in exported or name in exported, f"{name} is not exported"


def test_settings_read_the_documented_store_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("TAILCAST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TAILCAST_STORE_URL", "postgresql://u:p@db:5432/tailcast")
    settings = Settings()
    assert settings.store_url is not None
    assert settings.store_url.get_secret_value().startswith("postgresql://")
