"""The import-linter contracts cover every private module as the tree grows.

Each package has a contract forbidding the other packages its ``_private`` modules
(pyproject.toml); a module added later is only protected once it is listed there.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGES = CONFIG["tool"]["importlinter"]["root_packages"]


def _private_modules(package: str) -> set[str]:
    return {
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / package).rglob("_*.py")
        if p.name != "__init__.py"
    }


def _listed(package: str) -> set[str]:
    for contract in CONFIG["tool"]["importlinter"]["contracts"]:
        if contract["name"].startswith(f"other packages import {package} "):
            return set(contract["forbidden_modules"])
    pytest.fail(f"no import-linter contract guards {package}'s private modules")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_private_module_is_guarded_by_its_package_contract(package: str) -> None:
    private = _private_modules(package)
    listed = _listed(package)
    assert sorted(private - listed) == [], "add these to the contract in pyproject.toml"
    assert sorted(listed - private) == [], "these no longer exist: drop them"
