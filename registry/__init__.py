"""The model registry: MLflow-registered tailcast predictors, promoted by alias.

Importing it imports MLflow (the pyfunc flavor); import it only where the registry is
used. :func:`bound_http_calls` sets the time limits of MLflow's HTTP calls for the
whole process.
"""

from registry._client import RegistryError, bound_http_calls, redacted
from registry._mlflow import (
    CHALLENGER,
    CHAMPION,
    MLflowRegistry,
    registered_name,
)
from registry._signature import EXAMPLE_COLUMNS
from registry._version import ModelVersion

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "EXAMPLE_COLUMNS",
    "MLflowRegistry",
    "ModelVersion",
    "RegistryError",
    "bound_http_calls",
    "redacted",
    "registered_name",
]
