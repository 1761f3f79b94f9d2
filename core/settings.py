"""Settings, read from the environment (prefix ``TAILCAST_``) and a ``.env`` file.

Every path defaults to a file under ``home`` so that a fresh checkout runs on
embedded defaults (DuckDB and SQLite files) with no configuration at all.

Example:
    >>> s = Settings(home="/tmp/tc")
    >>> str(s.store_path)
    '/tmp/tc/store.duckdb'
    >>> s.mlflow_tracking_uri
    'sqlite:////tmp/tc/mlflow.db'
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """tailcast configuration.

    Attributes:
        home: Directory for every embedded file (store, registry, studies, reports).
        store_path: DuckDB feature-store file; default ``<home>/store.duckdb``.
        store_url: PostgreSQL feature store (``postgresql://user@host:port/db``); when
            set it is used instead of ``store_path`` (several replicas share it).
        mlflow_tracking_uri: MLflow tracking/registry URI; default SQLite under home.
        optuna_storage: Optuna study storage URL; default SQLite under home.
        api_token: Bearer token the REST API requires when set (writes always check it).
        allow_no_token: Let ``tailcast serve`` bind a non-loopback address without
            ``api_token`` (it refuses otherwise: the write and admin endpoints would be
            open to the network).
        host: Interface the REST API binds to.
        port: TCP port of the REST API.
        ingest_batch_rows: Rows per batch when importing files (memory vs. speed).
        drift_webhook_urls: URLs every drift alert is POSTed to (JSON list in the env).
        drift_webhook_secret: HMAC-SHA256 key of the ``X-Tailcast-Signature`` header.
    """

    model_config = SettingsConfigDict(
        env_prefix="TAILCAST_", env_file=".env", extra="ignore", frozen=True
    )

    home: Path = Path(".tailcast")
    store_path: Path | None = None
    store_url: SecretStr | None = None
    mlflow_tracking_uri: str | None = None
    optuna_storage: str | None = None
    api_token: SecretStr | None = None
    allow_no_token: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    ingest_batch_rows: int = Field(default=100_000, ge=1)
    drift_webhook_urls: list[str] = Field(default_factory=list)
    drift_webhook_secret: SecretStr | None = None

    @model_validator(mode="after")
    def _defaults_under_home(self) -> Self:
        home = self.home.expanduser()
        defaults = {
            "store_path": home / "store.duckdb",
            "mlflow_tracking_uri": f"sqlite:///{(home / 'mlflow.db').as_posix()}",
            "optuna_storage": f"sqlite:///{(home / 'optuna.db').as_posix()}",
        }
        for key, value in defaults.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        return self

    @property
    def resolved_store_path(self) -> Path:
        """The store path, never ``None`` after validation."""
        assert self.store_path is not None
        return self.store_path
