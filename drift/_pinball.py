"""Pinball-loss tracking: how much worse the recent forecasts score than the reference.

The reference is the mean pinball loss of a group's first observations after a reset
(the model when it was fresh); the ratio of the window mean to it rises when the
forecasts stop fitting, in whatever direction.

Example:
    >>> pinball_ratio(np.array([2.0, 4.0]), np.array([1.0, 2.0]))
    2.0
    >>> pinball_ratio(np.array([1.0]), np.array([]))
    1.0
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def pinball_ratio(window: npt.ArrayLike, reference: npt.ArrayLike) -> float:
    """Mean pinball loss of ``window`` over that of ``reference`` (1.0 when undefined)."""
    w = np.asarray(window, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if w.shape[0] == 0 or r.shape[0] == 0:
        return 1.0
    ref = float(r.mean())
    return float(w.mean()) / ref if ref > 0 else 1.0
