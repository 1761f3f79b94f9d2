"""Baseline latency predictors to compare tailcast's predictors against.

Every baseline implements :class:`Baseline`: ``fit(cols, y)`` on training-frame
columns and the target in seconds, ``predict(cols)`` giving ``(n, K)`` quantiles at
its ``levels``, ``predict_at(cols, levels)`` at any other levels.

* ``empirical``: per (served_model, device) empirical quantiles;
* ``swarmpilot_mlp``: SwarmPilot-style MLP on request features, quantiles of log latency;
* ``gbdt``: llm-d-style LightGBM quantile regression on tokens and load.
"""

from training.baselines._base import Baseline, NotFittedError
from training.baselines._columns import Columns
from training.baselines.empirical import EmpiricalQuantiles
from training.baselines.gbdt import GBDTQuantiles
from training.baselines.swarmpilot_mlp import SWARMPILOT_LEVELS, SwarmPilotMLP

#: Baseline name to class.
BASELINES: dict[str, type[Baseline]] = {
    cls.name: cls for cls in (EmpiricalQuantiles, SwarmPilotMLP, GBDTQuantiles)
}

__all__ = [
    "BASELINES",
    "SWARMPILOT_LEVELS",
    "Baseline",
    "Columns",
    "EmpiricalQuantiles",
    "GBDTQuantiles",
    "NotFittedError",
    "SwarmPilotMLP",
]
