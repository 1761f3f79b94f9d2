"""Run the ``tailcast`` console script from the CLI tests.

Every run gets a clean environment: this process's variables minus every
``TAILCAST_*`` and ``MLFLOW_*`` one (a developer's store, registry or token never
leaks into a test), plus ``TAILCAST_HOME`` and what the test passes. Every run is
bounded by a timeout.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mypy maps tests/<pkg>/*.py to top-level modules (no __init__.py)
    from _replicas import TAILCAST, clean_env
else:
    from tests.serving._replicas import TAILCAST, clean_env


def tailcast(
    *args: str, home: Path, timeout: float = 600.0, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``tailcast *args`` on ``home`` in a clean environment.

    The environment is this process's minus every ``TAILCAST_*`` and ``MLFLOW_*``
    variable (``tests.serving._replicas.clean_env``), plus ``TAILCAST_HOME=home`` and
    ``env``.

    Args:
        args: Command-line arguments.
        home: The tailcast home.
        timeout: Seconds before the run is killed (``subprocess.TimeoutExpired``).
        cwd: Working directory (default: this process's).
        env: Extra environment variables.
    """
    return subprocess.run(
        [str(TAILCAST), *args],
        capture_output=True,
        text=True,
        env=clean_env(**{"TAILCAST_HOME": str(home), **env}),
        timeout=timeout,
        cwd=cwd,
    )
