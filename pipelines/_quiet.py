"""Keep the training stack's noise out of user-facing output, with narrow filters."""

from __future__ import annotations

import logging
import warnings

#: Loggers of the training stack that speak at INFO about things users need not see.
_LOGGERS = (
    "lightning",
    "lightning.pytorch",
    "lightning.fabric",
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "optuna",
)


def quiet_training_stack() -> None:
    """Silence Lightning's and Optuna's chatter (their warnings and INFO logs) only.

    Warnings raised from other modules keep their filters: the filters match the
    warning's module (``lightning``, ``pytorch_lightning``, ``torch.utils.data``).
    """
    for module in ("lightning", "pytorch_lightning", "torch.utils.data"):
        warnings.filterwarnings("ignore", module=module)
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
