from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.plots import comparison_bar, pareto_front, pit_histogram, reliability_diagram

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 2000


def test_reliability_diagram(tmp_path: Path) -> None:
    levels = [0.1, 0.5, 0.9, 0.95, 0.99]
    out = reliability_diagram(
        {
            "empirical": (levels, [0.09, 0.49, 0.9, 0.95, 0.99]),
            "gbdt": (np.array(levels), np.array([0.11, 0.46, 0.87, 0.92, 0.97])),
        },
        tmp_path / "nested" / "reliability.png",
    )
    assert out == tmp_path / "nested" / "reliability.png"
    assert_png(out)
    with pytest.raises(ValueError, match="levels"):
        reliability_diagram({"bad": ([0.1, 0.5], [0.1])}, tmp_path / "bad.png")


def test_pit_histogram(tmp_path: Path) -> None:
    u = np.random.default_rng(0).uniform(size=1000)
    assert_png(pit_histogram(u, str(tmp_path / "pit.png"), bins=10))


def test_pareto_front(tmp_path: Path) -> None:
    points = [
        (3.0, 1.9, True, False),
        (40.0, 1.6, True, True),
        (900.0, 1.55, True, False),
        (120.0, 1.8, False, False),
    ]
    assert_png(pareto_front(points, tmp_path / "pareto.png"))
    with pytest.raises(ValueError, match="> 0"):
        pareto_front([(0.0, 1.0, True, False)], tmp_path / "zero.png")


def test_comparison_bar(tmp_path: Path) -> None:
    table = {"empirical": 1.606, "swarmpilot_mlp": 1.474, "gbdt": 1.577}
    assert_png(comparison_bar(table, tmp_path / "bars.png"))
