"""The persisted form of the monitor's state: versioned, JSON, never pickle.

A drift judge saves one JSON document per group (:class:`GroupSnapshot`, keyed by
:meth:`core.drift.DriftGroup.key`) and one for itself (:class:`JudgeSnapshot` under
:data:`JUDGE_KEY`), so a judge that starts (after a restart, or on another replica)
continues the same judgement. Windows of floats are packed as base64 of little-endian
float64 (exact, about a third the size of decimal text); a river ADWIN keeps its
window in river's own binary encoding (base64), valid only for the river version and
``delta`` that wrote it (else the detector is rebuilt from the group's window).

Size: at most ``16 * window + 8 * min_samples`` bytes of floats before base64 plus
two ADWIN encodings (logarithmic in their width, about 1.3 kB at 2,500 values) and
the latest statistics: about 16 kB per group with the default ``window=500``.

Example:
    >>> pack([0.5, 1.0]), unpack(pack([0.5, 1.0]))
    ('AAAAAAAA4D8AAAAAAADwPw==', [0.5, 1.0])
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import datetime

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from core.drift import DriftGroup, GroupState

#: The format version written in every snapshot; another version is not restored.
STATE_FORMAT = 1
#: The state key of the judge's own snapshot (no group key equals it: those hold ``|``).
JUDGE_KEY = "judge"


def pack(values: Iterable[float]) -> str:
    """Floats as base64 of little-endian float64 (exact round trip)."""
    raw = np.fromiter(values, dtype="<f8").tobytes()
    return base64.b64encode(raw).decode("ascii")


def unpack(text: str) -> list[float]:
    """The floats :func:`pack` packed.

    Raises:
        ValueError: Not base64 of a whole number of float64 values.
    """
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if len(raw) % 8:
        raise ValueError(f"{len(raw)} bytes are not a whole number of float64 values")
    return [float(x) for x in np.frombuffer(raw, dtype="<f8")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")


class AdwinSnapshot(_Frozen):
    """One :class:`drift.AdwinDetector`.

    Attributes:
        n: Values fed.
        detections: Changes detected.
        last_detection: ``n`` at the latest detection.
        drift_detected: Whether the latest value was a detection (river then resets
            the window at the next value).
        delta: ADWIN's confidence parameter the window was built with.
        clock: ADWIN's check interval, in values.
        river: The river version whose encoding ``window`` is.
        window: River's own encoding of ADWIN's buckets, base64.
    """

    n: int = Field(ge=0)
    detections: int = Field(ge=0)
    last_detection: int | None = None
    drift_detected: bool = False
    delta: float
    clock: int
    river: str
    window: str


class GroupSnapshot(_Frozen):
    """One :class:`drift.GroupMonitor`: its state machine, windows and detectors.

    Attributes:
        format: :data:`STATE_FORMAT`.
        group: The group.
        state: ``"ok"`` or ``"ood"``.
        since: When the state last changed (UTC), if it ever did.
        n: Observations since the group was created or reset.
        model_version: The model version of the latest observation.
        statistics: The latest test round's statistics.
        streak: Consecutive calm rounds of an OOD group (hysteresis).
        u: The window of PIT values, oldest first (:func:`pack`).
        loss: The window of pinball losses, seconds (:func:`pack`).
        reference: The reference pinball losses (the first ``min_samples``).
        adwin_u: The ADWIN detector on u.
        adwin_loss: The ADWIN detector on the pinball loss.
    """

    format: int
    group: DriftGroup
    state: GroupState
    since: AwareDatetime | None = None
    n: int = Field(ge=0)
    model_version: str | None = None
    statistics: dict[str, float] = Field(default_factory=dict)
    streak: int = Field(ge=0)
    u: str
    loss: str
    reference: str
    adwin_u: AdwinSnapshot
    adwin_loss: AdwinSnapshot


class JudgeSnapshot(_Frozen):
    """What the judge keeps besides the groups.

    Attributes:
        format: :data:`STATE_FORMAT`.
        versions: The champion version last judged, by served model.
        retrain_requested_at: The latest granted retraining request, by served model
            (the debouncer's cooldowns).
    """

    format: int
    versions: dict[str, str] = Field(default_factory=dict)
    retrain_requested_at: dict[str, datetime] = Field(default_factory=dict)
