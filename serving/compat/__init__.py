"""llm-d compatibility: the HTTP contract of llm-d's latency-predictor sidecars.

See :mod:`serving.compat.routes` for the endpoints and ``docs/serving.md`` for the
field mapping.
"""

from serving.compat._mapping import target_names
from serving.compat.routes import router

__all__ = ["router", "target_names"]
