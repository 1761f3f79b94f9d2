"""Monitor configuration: frozen data, no behaviour.

The false-alarm rate is controlled per group: the windowed uniformity test and the
coverage test run every ``test_every`` observations, so over ``horizon`` observations
a group runs at most ``m = 2 * ceil(horizon / test_every)`` tests; each test rejects at
``alpha / m`` (Bonferroni), so a calibrated group raises a false alarm with
probability at most ``alpha`` per ``horizon`` observations (less in practice: the
windows overlap, which makes the tests positively correlated).

Example:
    >>> c = MonitorConfig()
    >>> c.tests_per_horizon, f"{c.test_alpha:.2e}"
    (200, '5.00e-05')
"""

from __future__ import annotations

import math
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Trigger = Literal["uniformity", "coverage", "adwin_u", "adwin_pinball", "pinball"]


class MonitorConfig(BaseModel):
    """Thresholds of the per-group drift monitor.

    Attributes:
        window: Most recent observations per group the windowed tests look at.
        min_samples: A group is never judged before it has this many observations.
        test_every: Run the windowed tests every this many observations of a group.
        alpha: Family-wise false-alarm probability per group per ``horizon`` observations.
        horizon: Observations over which ``alpha`` is spent (Bonferroni).
        uniformity_test: ``"ks"`` (Kolmogorov-Smirnov) or ``"ad"`` (Anderson-Darling) of
            u against Uniform(0, 1).
        ks_tolerance: KS distance from uniform that is still acceptable: the KS test is
            of "distance <= tolerance" (see :func:`drift.ks_uniform`), and the AD test
            only counts when the KS distance exceeds it, so a mildly miscalibrated but
            stable model does not alarm forever.
        coverage_level: The quantile level whose coverage is tested (u <= level).
        coverage_tolerance: Coverage within ``level +- tolerance`` is acceptable: the
            binomial test is against the nearer edge of that band.
        adwin_delta: Confidence parameter of the river ADWIN detectors (on u, on pinball).
        adwin_min_shift: ADWIN evidence counts only when its window mean of u moved at
            least this far from 0.5 (or, for pinball, rose by this fraction).
        pinball_ratio: Window mean pinball loss over the reference (first ``min_samples``
            after a reset) above which the ``"pinball"`` trigger fires.
        triggers: Which evidence can turn a group OOD.
        min_votes: How many triggers must fire together.
        recover_pvalue: Hysteresis: an OOD group turns back only when every windowed test
            has p-value at least this (far above the alarm threshold) ...
        recover_tests: ... for this many consecutive test rounds.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(default=500, ge=10)
    min_samples: int = Field(default=100, ge=10)
    test_every: int = Field(default=25, ge=1)
    alpha: float = Field(default=0.01, gt=0.0, lt=1.0)
    horizon: int = Field(default=2500, ge=1)
    uniformity_test: Literal["ks", "ad"] = "ks"
    ks_tolerance: float = Field(default=0.08, ge=0.0, lt=1.0)
    coverage_level: float = Field(default=0.9, gt=0.0, lt=1.0)
    coverage_tolerance: float = Field(default=0.05, ge=0.0, lt=0.5)
    adwin_delta: float = Field(default=0.002, gt=0.0, lt=1.0)
    adwin_min_shift: float = Field(default=0.1, ge=0.0)
    pinball_ratio: float = Field(default=1.5, gt=1.0)
    triggers: frozenset[Trigger] = frozenset({"uniformity", "coverage"})
    min_votes: int = Field(default=1, ge=1)
    recover_pvalue: float = Field(default=0.05, gt=0.0, lt=1.0)
    recover_tests: int = Field(default=4, ge=1)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.min_samples > self.window:
            raise ValueError(f"min_samples ({self.min_samples}) must be <= window ({self.window})")
        if self.min_votes > len(self.triggers):
            raise ValueError(
                f"min_votes ({self.min_votes}) exceeds the {len(self.triggers)} triggers"
            )
        return self

    @property
    def tests_per_horizon(self) -> int:
        """Windowed tests (uniformity + coverage) a group runs per ``horizon``."""
        return 2 * math.ceil(self.horizon / self.test_every)

    @property
    def test_alpha(self) -> float:
        """Per-test rejection level: ``alpha / tests_per_horizon`` (Bonferroni)."""
        return self.alpha / self.tests_per_horizon
