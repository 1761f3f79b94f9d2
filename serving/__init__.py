"""The prediction service: FastAPI app on the router's hot path (no training stack).

Public API: :func:`create_app` and :class:`ServingConfig`.
"""

from serving.app import create_app
from serving.config import ServingConfig

__all__ = ["ServingConfig", "create_app"]
