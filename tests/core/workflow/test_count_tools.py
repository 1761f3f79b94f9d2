"""Call-count law and tool-time tables."""

from __future__ import annotations

import numpy as np
import pytest

from core.workflow import CallCountModel, ToolTimes, command_kind


def test_call_count_weights_and_pmf_exact() -> None:
    emb = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    kernels = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    m = CallCountModel(emb, kernels, ("a", "a", "b"), k=2, shrink=0.3, boost=3.0)
    w = m.weights(np.array([2.0, 0.0]), "a")  # nearest: runs 0 and 1
    raw = np.array([0.1 + 0.5, 0.1 + 0.5, 0.1]) * np.array([3.0, 3.0, 1.0])
    np.testing.assert_allclose(w, raw / raw.sum())
    np.testing.assert_allclose(m.pmf(np.array([2.0, 0.0]), "a"), raw / raw.sum())
    assert m.cdf(np.array([0.0, 1.0]), None)[-1] == 1.0
    # no text: the text-blind empirical law
    np.testing.assert_allclose(m.pmf(np.zeros(2), None), [1 / 3, 1 / 3, 1 / 3])
    assert m.max_calls == 3
    with pytest.raises(ValueError, match="one row per run"):
        CallCountModel(emb, kernels, ("a",))


def test_call_count_leaves_out_excluded_runs() -> None:
    emb = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    m = CallCountModel(emb, np.eye(3), ("a", "a", "b"), k=2, shrink=0.3, boost=1.0)
    # run 0 left out: the empirical part is spread over runs 1 and 2, both neighbours
    w = m.weights(np.array([1.0, 0.0]), None, exclude=np.array([True, False, False]))
    np.testing.assert_allclose(w, [0.0, 0.5, 0.5])
    w = m.weights(np.array([1.0, 0.0]), None, exclude=np.array([False, True, False]))
    np.testing.assert_allclose(w, np.array([0.15 + 0.5, 0.0, 0.15 + 0.5]) / 1.3)
    with pytest.raises(ValueError, match="every training run is excluded"):
        m.weights(np.array([1.0, 0.0]), None, exclude=np.ones(3, dtype=bool))


@pytest.mark.parametrize(
    ("command", "kind"),
    [
        ("cd /testbed && cd src && grep -rn foo .", "grep"),
        ("/usr/bin/python3 -c 'print(1)'", "python"),
        ("pytest -x", "python"),
        ("   ", "none"),
        ("sed -n '1,20p' a.py", "sed"),
    ],
)
def test_command_kind(command: str, kind: str) -> None:
    assert command_kind(command) == kind


def test_tool_times_quantiles() -> None:
    t = ToolTimes(np.array([0.1, 0.2, 0.3, 0.4]), {"python": np.array([1.0, 2.0, 3.0, 4.0])})
    np.testing.assert_allclose(t.quantiles(np.array([0.125, 0.5]), "python"), [1.0, 2.5])
    np.testing.assert_allclose(t.quantiles(np.array([0.875])), [0.4])
    assert t.mean() == pytest.approx(0.25)
    assert t.table("cat") is t.pooled
