"""The prediction service: FastAPI app on the router's hot path (no training stack).

Public API: :func:`create_app`, :class:`ServingConfig`, and for ``create_app(hooks=...)``
:class:`ServiceHook` and the :class:`ServiceState` a hook is started with, and
:func:`record_retraining` (the drift metrics' count of retraining outcomes).
"""

from serving._drift_metrics import record_retraining
from serving._state import ServiceHook, ServiceState
from serving.app import create_app
from serving.config import ServingConfig

__all__ = ["ServiceHook", "ServiceState", "ServingConfig", "create_app", "record_retraining"]
