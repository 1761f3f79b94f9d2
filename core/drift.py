"""Drift domain types shared by the monitor, the store, serving and the pipelines.

A forecast is calibrated when the probability integral transform of the observed
value, ``u = F(observed)``, is Uniform(0, 1). The monitor (``drift/``) watches ``u``
and the pinball loss per :class:`DriftGroup`; what it emits are :class:`DriftEvent`
rows, which the store keeps and the alert outbox delivers.

Example:
    >>> levels = np.array([0.1, 0.5, 0.9])
    >>> values = np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])
    >>> u, loss = pit_and_pinball(levels, values, np.array([2.0, 3.0]))
    >>> u.round(3).tolist(), loss.round(4).tolist()
    ([0.5, 0.7], [0.1, 0.2667])
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from core.quantiles import cdf_rows

F64 = npt.NDArray[np.float64]

DriftKind = Literal["ood", "recovered"]


class DriftGroup(BaseModel):
    """The unit the monitor keeps statistics for.

    Attributes:
        served_model: The served model (``deepseek-chat``).
        prompt_class: Learned or client-supplied prompt class (``"default"`` when none).
        device: Device type or endpoint the request ran on.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    served_model: str
    prompt_class: str
    device: str

    def key(self) -> str:
        """A stable string key, ``served_model|prompt_class|device``."""
        return f"{self.served_model}|{self.prompt_class}|{self.device}"


class DriftObservation(BaseModel):
    """One completion as the monitor sees it.

    Attributes:
        group: The group the completion belongs to.
        u: PIT value ``F(observed)`` in [0, 1] under the issued (or would-be) forecast.
        pinball: Mean pinball loss of that forecast at the observed value (target units,
            e.g. seconds).
        model_version: The model version that issued the forecast, if known.
        observed_at: When the outcome was observed (UTC).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: DriftGroup
    u: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    pinball: float = Field(ge=0.0, allow_inf_nan=False)
    model_version: str | None = None
    observed_at: AwareDatetime

    @field_validator("observed_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


def drift_event_id(
    group: DriftGroup, kind: DriftKind, at: datetime, model_version: str | None
) -> str:
    """Deterministic event id: sha256 of group, kind, time (UTC, µs) and model version.

    >>> g = DriftGroup(served_model="m", prompt_class="default", device="d")
    >>> t = datetime(2026, 4, 11, tzinfo=UTC)
    >>> drift_event_id(g, "ood", t, "3") == drift_event_id(g, "ood", t, "3")
    True
    >>> len(drift_event_id(g, "ood", t, None))
    32
    """
    at_utc = at.astimezone(UTC).isoformat(timespec="microseconds")
    raw = "\x1f".join((group.key(), kind, at_utc, model_version or ""))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class DriftEvent(BaseModel):
    """A group changed state (turned out of distribution, or recovered).

    Attributes:
        event_id: Deterministic id (:func:`drift_event_id`); the idempotency key.
        group: The group that changed state.
        kind: ``"ood"`` or ``"recovered"``.
        at: Time of the observation that triggered the change (UTC).
        model_version: The model version whose forecasts were judged.
        n_samples: Observations of the group seen since the last reset.
        statistics: Evidence at the change, e.g. ``ks_pvalue``, ``coverage_90``,
            ``binom_pvalue``, ``adwin_u`` (0/1 flags for detectors).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    group: DriftGroup
    kind: DriftKind
    at: AwareDatetime
    model_version: str | None = None
    n_samples: int = Field(ge=0)
    statistics: dict[str, float] = Field(default_factory=dict)

    @field_validator("at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @classmethod
    def create(
        cls,
        group: DriftGroup,
        kind: DriftKind,
        at: datetime,
        model_version: str | None,
        n_samples: int,
        statistics: dict[str, float],
    ) -> DriftEvent:
        """Build an event with its deterministic id."""
        return cls(
            event_id=drift_event_id(group, kind, at, model_version),
            group=group,
            kind=kind,
            at=at,
            model_version=model_version,
            n_samples=n_samples,
            statistics=statistics,
        )


def pit_and_pinball(
    levels: npt.ArrayLike, values: npt.ArrayLike, observed: npt.ArrayLike
) -> tuple[F64, F64]:
    """PIT values and mean pinball losses of ``n`` quantile forecasts, vectorized.

    Args:
        levels: Quantile levels (K,), strictly increasing in (0, 1).
        values: Quantile forecasts (n, K), rows non-decreasing (e.g. seconds).
        observed: The observed values (n,), same unit as ``values``.

    Returns:
        ``(u, pinball)``, each (n,): ``u = F(observed)`` under each row's distribution
        (interpolation rules of :mod:`core.quantiles`, support bounded below by 0), and
        the pinball loss averaged over the K levels, in the unit of ``values``.

    Raises:
        ValueError: On mismatched shapes.
    """
    lv = np.asarray(levels, dtype=np.float64)
    vs = np.atleast_2d(np.asarray(values, dtype=np.float64))
    y = np.asarray(observed, dtype=np.float64).reshape(-1)
    if vs.shape != (y.shape[0], lv.shape[0]):
        raise ValueError(f"values {vs.shape} must be (n, K) = ({y.shape[0]}, {lv.shape[0]})")
    if y.shape[0] == 0:
        return np.zeros(0), np.zeros(0)
    u = cdf_rows(lv, vs, y[:, None], lower=0.0)[:, 0]
    diff = y[:, None] - vs
    loss = np.maximum(lv[None, :] * diff, (lv[None, :] - 1.0) * diff)
    return np.asarray(u, dtype=np.float64), np.asarray(loss.mean(axis=1), dtype=np.float64)


GroupState = Literal["ok", "ood"]


class GroupStatus(BaseModel):
    """What the monitor currently thinks of one group.

    Attributes:
        group: The group.
        state: ``"ok"`` or ``"ood"`` (out of distribution).
        n: Observations since the group was created or last reset.
        model_version: Model version of the most recent observation.
        since: When the group entered its current state (``None``: never changed).
        statistics: The most recent test round's evidence (empty before ``min_samples``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: DriftGroup
    state: GroupState
    n: int = Field(ge=0)
    model_version: str | None = None
    since: AwareDatetime | None = None
    statistics: dict[str, float] = Field(default_factory=dict)


class AlertMessage(BaseModel):
    """One drift alert waiting in (or delivered from) the durable outbox.

    Attributes:
        alert_id: Deterministic id of (event, url); the idempotency key of the outbox.
        event_id: The drift event the alert announces.
        url: Where the alert is POSTed.
        body: The exact JSON body (UTF-8 text) that is sent and signed, every attempt.
        attempts: Delivery attempts made so far.
        next_attempt_at: Earliest time of the next attempt (UTC).
        created_at: When the alert was enqueued (UTC).
        delivered_at: When a receiver acknowledged it with a 2xx (``None``: pending).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    alert_id: str
    event_id: str
    url: str
    body: str
    attempts: int = Field(default=0, ge=0)
    next_attempt_at: AwareDatetime
    created_at: AwareDatetime
    delivered_at: AwareDatetime | None = None


class DeliveryAttempt(BaseModel):
    """One try to deliver an alert (the delivery log).

    Attributes:
        alert_id: The alert.
        attempt: 1-based attempt number.
        at: When the attempt was made (UTC).
        status_code: The HTTP status received, ``None`` when no response came.
        error: What went wrong (``None`` on success).
        delivered: Whether this attempt delivered the alert (2xx).
        duration_s: Wall time of the attempt in seconds.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    alert_id: str
    attempt: int = Field(ge=1)
    at: AwareDatetime
    status_code: int | None = None
    error: str | None = None
    delivered: bool
    duration_s: float = Field(default=0.0, ge=0.0)


def alert_id_for(event_id: str, url: str) -> str:
    """Deterministic outbox id of the alert of ``event_id`` to ``url`` (32 hex chars)."""
    return hashlib.sha256(f"{event_id}\x1f{url}".encode()).hexdigest()[:32]


class DriftReportInfo(BaseModel):
    """A saved drift report (the HTML file itself lives under ``settings.home/drift_reports``).

    Attributes:
        report_id: The report's id (also its file name stem); letters, digits, ``._-``.
        served_model: The served model it covers.
        created_at: When it was written (UTC).
        path: The HTML file.
        reference_rows: Rows in the reference window (training data).
        current_rows: Rows in the current window.
        mlflow_run_id: The MLflow run it was logged to, if any.
        summary: Headline numbers, e.g. ``drift_share`` (share of drifted columns) and
            one statistic per column: ``pvalue:<column>`` (a test's p-value, low means
            drift) or ``distance:<column>`` (a distance, high means drift).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    report_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,200}$")
    served_model: str
    created_at: AwareDatetime
    path: str
    reference_rows: int = Field(ge=0)
    current_rows: int = Field(ge=0)
    mlflow_run_id: str | None = None
    summary: dict[str, float] = Field(default_factory=dict)
