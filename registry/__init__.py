"""The model registry: MLflow-registered tailcast predictors, promoted by alias.

``registry._mlflow`` imports MLflow; import it only where the registry is used.
"""

from registry._mlflow import (
    CHALLENGER,
    CHAMPION,
    EXAMPLE_COLUMNS,
    MLflowRegistry,
    ModelVersion,
    RegistryError,
    registered_name,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "EXAMPLE_COLUMNS",
    "MLflowRegistry",
    "ModelVersion",
    "RegistryError",
    "registered_name",
]
