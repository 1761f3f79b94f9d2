"""llm-d compatibility: the HTTP contract of llm-d's latency-predictor sidecars.

:data:`router` serves both of llm-d's servers on tailcast's port: the prediction
server's endpoints (:mod:`serving.compat.routes`) and the training server's
(:mod:`serving.compat.routes` for ``/add_training_data_bulk``,
:mod:`serving.compat.training_routes` for the rest). ``docs/serving.md`` has the
field mapping and what tailcast runs behind each endpoint.
"""

from fastapi import APIRouter

from serving.compat import routes, training_routes
from serving.compat._data import FlushMarks, load_marks, retained
from serving.compat._mapping import target_names
from serving.compat._training import metric_lines

router = APIRouter()
router.include_router(routes.router)
router.include_router(training_routes.router)

__all__ = ["FlushMarks", "load_marks", "metric_lines", "retained", "router", "target_names"]
