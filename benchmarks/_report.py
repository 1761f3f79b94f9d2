"""Write benchmark results into their own section of BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def machine() -> str:
    """One line describing this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def commit() -> str:
    """Short hash of the last commit of the measured code, or 'unknown'.

    Commits that only record results (BENCHMARKS.md, benchmarks/plots) are skipped, so
    sections measured one after another on the same code name the same commit while
    each result is committed as it arrives.
    """
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", ".", ":!BENCHMARKS.md", ":!benchmarks/plots"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def save_png(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Lay out, write ``fig`` to ``path`` (parent created) and close it; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def write_section(name: str, command: str, body: str) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md."""
    header = (
        f"<!-- bench:{name} -->\n## {name}\n\n"
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}\n"
        f"- machine: {machine()}\n- command: `{command}`\n\n{body.rstrip()}\n"
        f"<!-- /bench:{name} -->\n"
    )
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n\n"
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->\n", re.DOTALL
    )
    text = pattern.sub(lambda _: header, text) if pattern.search(text) else text + "\n" + header
    BENCHMARKS_MD.write_text(text)
