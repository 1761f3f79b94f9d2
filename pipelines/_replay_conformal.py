"""Adaptive conformal calibration inside the replay, strictly online.

A request's forecast is issued when it is submitted, so the offsets it gets are those
the calibrator had learned from the completions finished by then; its own outcome, and
those of requests finished while it ran, only move the offsets of later forecasts. The
replay streams completions in completion order, so :class:`OnlineOffsets` takes each
request's offsets at its submission time (before the first completion finishing after
it is learned from), applies them to the model's forecast when the request completes,
rescoring it, and then learns from its outcome.

The drift monitor keeps judging the model's own forecasts (``Stream.u``,
``Stream.pinball``): the calibrator patches what is served, the alarm still says the
model needs retraining.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from core.drift import DriftGroup
from drift import AdaptiveCalibrator, apply_offsets

if TYPE_CHECKING:
    from pipelines._replay_loop import Stream

F64 = npt.NDArray[np.float64]


class OnlineOffsets:
    """Submission-time offsets of a :class:`drift.AdaptiveCalibrator` over a replay stream.

    Args:
        calibrator: The calibrator (fresh, or restored).
        stream: The replayed completions; :meth:`Stream.judge` must have given the
            forecasts and prompt classes of a completion before :meth:`serve` sees it.
        served_model: The served model replayed.
    """

    def __init__(self, calibrator: AdaptiveCalibrator, stream: Stream, served_model: str) -> None:
        self.calibrator = calibrator
        self.stream = stream
        self.served_model = served_model
        submitted = np.array([t.timestamp() for t in stream.submitted], dtype=np.float64)
        self._order = np.argsort(submitted, kind="stable")
        self._next = 0  # position in _order of the next request not yet issued
        self._issued: dict[int, F64] = {}  # completion index -> offsets at its submission

    def _group(self, i: int) -> DriftGroup:
        return DriftGroup(
            served_model=self.served_model,
            prompt_class=self.stream.classes[i],
            device=self.stream.devices[i],
        )

    def serve(self, i: int) -> None:
        """Completion ``i`` (in completion order) finished: issue, rescore, learn.

        Every request submitted before it finished gets its offsets first (the state
        then holds only completions finished earlier); completion ``i`` is rescored
        under its adjusted forecast (:meth:`Stream.rescore`), then learned from.
        """
        stream, levels = self.stream, self.stream.levels
        done = stream.at[i]
        while self._next < len(self._order):
            j = int(self._order[self._next])
            if stream.submitted[j] >= done:
                break
            self._issued[j] = self.calibrator.offsets(self._group(j), levels)
            self._next += 1
        offsets = self._issued.pop(i, np.zeros(len(levels)))
        issued = apply_offsets(stream.values[i], offsets)
        stream.rescore(i, issued)
        self.calibrator.update(self._group(i), levels, issued, float(stream.y[i]))

    def reset(self, start: int) -> None:
        """A new model serves from completion ``start`` on: its offsets start at zero.

        Requests already issued but not completed keep no offsets (the new model's
        offsets learn only from completions after the swap, after they were issued).
        """
        self.calibrator.reset(self.served_model)
        for j in self._issued:
            if j >= start:
                self._issued[j] = np.zeros(len(self.stream.levels))
