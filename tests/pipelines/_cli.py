"""Run the ``tailcast`` console script from the CLI tests.

Every run gets a clean environment: this process's variables minus every
``TAILCAST_*`` and ``MLFLOW_*`` one (a developer's store, registry or token never
leaks into a test), plus ``TAILCAST_HOME`` and what the test passes. Every run is
bounded by a timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TAILCAST = Path(sys.executable).parent / "tailcast"
"""The console script of this virtual environment."""


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without ``TAILCAST_*``/``MLFLOW_*``, with ``TAILCAST_HOME=home``.

    Args:
        home: The tailcast home of the run.
        extra: Variables to set on top (may set ``TAILCAST_*`` ones on purpose).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAILCAST_", "MLFLOW_"))}
    env.update(TAILCAST_HOME=str(home), HF_HUB_OFFLINE="1", **extra)
    return env


def tailcast(
    *args: str, home: Path, timeout: float = 600.0, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``tailcast *args`` on ``home`` in a clean environment (see :func:`clean_env`).

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
        env=clean_env(home, **env),
        timeout=timeout,
        cwd=cwd,
    )
