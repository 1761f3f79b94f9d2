"""A service with one champion under real uvicorn, for the hook tests (scaling, AIBrix, client).

Imported explicitly by the test modules (the repo has one conftest.py only).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from registry import MLflowRegistry
from serving import create_app

if TYPE_CHECKING:
    from _fixtures import SERVED, register, running, settings
else:
    from tests.serving._fixtures import SERVED, register, running, settings


@contextmanager
def serving_champion(home: Path, token: str | None = None) -> Iterator[str]:
    """The service on 127.0.0.1 with a champion of ``SERVED`` in a SQLite registry under ``home``.

    Yields:
        The base URL.
    """
    registry = MLflowRegistry(f"sqlite:///{home / 'mlflow.db'}")
    register(registry, SERVED)
    with running(create_app(settings(home, registry, token))) as url:
        yield url
