"""How a process reaches the registry: tracking URIs, time limits, a fast first check.

MLflow's client retries an HTTP call on connection errors, read timeouts and 429/5xx
answers with exponential backoff; with its defaults (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``
7, ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` 2, backoff capped at 120 s, each attempt
waiting up to ``MLFLOW_HTTP_REQUEST_TIMEOUT`` 120 s) one call to an unreachable
server takes about four minutes to fail. Those variables are read on every call, so
:func:`bound_http_calls` shortens them for the whole process. For a SQL registry MLflow
builds its engine with ten attempts over about 100 s and the database driver waits for
a connection as long as the operating system does; :func:`with_connect_timeout` and
:func:`probe_database` make an unreachable database fail in seconds instead.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from core import TailcastError

logger = logging.getLogger(__name__)

#: Database URI schemes (before any ``+driver``) whose drivers take ``connect_timeout``.
_TIMEOUT_SCHEMES = frozenset({"postgresql", "postgres", "mysql"})


class RegistryError(TailcastError):
    """The registry could not do what was asked, or cannot be reached.

    Asked: an unknown model, version or alias, or an alias MLflow rejects.
    """


def normalize_uri(uri: str) -> str:
    """The tracking URI MLflow should get.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to the psycopg 3 driver; when only
    psycopg2 is installed (the ``registry`` extra), name it explicitly.
    """
    scheme, sep, rest = uri.partition("://")
    if (
        sep
        and scheme in ("postgresql", "postgres")
        and importlib.util.find_spec("psycopg") is None
        and importlib.util.find_spec("psycopg2") is not None
    ):
        return f"postgresql+psycopg2://{rest}"
    return uri


def default_artifact_root(uri: str) -> str | None:
    """Where a registry at ``uri`` keeps artifacts when no root is given.

    A SQLite registry keeps them in ``mlartifacts/`` next to the database file (MLflow
    would write to ``./mlruns`` under whatever the working directory is); other
    backends use their own default (a tracking server's artifact destination).

    >>> default_artifact_root("sqlite:////srv/tc/mlflow.db")
    'file:///srv/tc/mlartifacts'
    >>> default_artifact_root("http://mlflow:5000") is None
    True
    """
    db = sqlite_path(uri)
    if db is None:
        return None
    return (db.parent / "mlartifacts").resolve().as_uri()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other URIs and ``:memory:``)."""
    parts = urlsplit(uri)
    if parts.scheme != "sqlite" or parts.path in ("", "/", "/:memory:"):
        return None
    return Path(unquote(parts.path[1:]))  # sqlite:///rel.db -> rel.db, //// -> /abs


def redacted(uri: str) -> str:
    """``uri`` without its password, for messages and logs.

    >>> redacted("postgresql://tc:secret@db:5432/mlflow")
    'postgresql://tc:***@db:5432/mlflow'
    >>> redacted("http://mlflow:5000")
    'http://mlflow:5000'
    """
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def with_connect_timeout(uri: str, timeout_s: float) -> str:
    """A PostgreSQL or MySQL URI whose driver gives up connecting after ``timeout_s``.

    Other URIs, and URIs that already name a ``connect_timeout``, are returned as
    given. The driver takes whole seconds (at least 1).

    >>> with_connect_timeout("postgresql+psycopg2://u@db/mlflow", 3)
    'postgresql+psycopg2://u@db/mlflow?connect_timeout=3'
    >>> with_connect_timeout("postgresql://u@db/m?sslmode=require&connect_timeout=9", 3)
    'postgresql://u@db/m?sslmode=require&connect_timeout=9'
    >>> with_connect_timeout("http://mlflow:5000", 3)
    'http://mlflow:5000'
    """
    parts = urlsplit(uri)
    if parts.scheme.split("+", 1)[0] not in _TIMEOUT_SCHEMES:
        return uri
    if any(key == "connect_timeout" for key, _ in parse_qsl(parts.query)):
        return uri
    timeout = f"connect_timeout={max(1, round(timeout_s))}"
    query = f"{parts.query}&{timeout}" if parts.query else timeout
    return urlunsplit(parts._replace(query=query))


def is_database_uri(uri: str) -> bool:
    """Whether ``uri`` names a SQL database reached over the network (not SQLite).

    >>> is_database_uri("postgresql://u@db/mlflow"), is_database_uri("sqlite:///m.db")
    (True, False)
    """
    return urlsplit(uri).scheme.split("+", 1)[0] in _TIMEOUT_SCHEMES | {"mssql"}


def probe_database(uri: str) -> None:
    """Open and close one connection to the registry database, once.

    MLflow itself retries creating its engine for about 100 s; this answers at once
    (within the URI's ``connect_timeout``) with the driver's reason.

    Raises:
        RegistryError: The database cannot be reached or refuses the connection.
    """
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(uri, poolclass=NullPool)
    try:
        with engine.connect():
            pass
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise RegistryError(
            f"cannot connect to the registry database {redacted(uri)}: "
            f"{reason[0] if reason else type(exc).__name__}"
        ) from exc
    finally:
        engine.dispose()


def bound_http_calls(timeout_s: int, max_retries: int, backoff_factor: int = 1) -> dict[str, str]:
    """Bound every MLflow HTTP call of this process (its environment variables).

    Sets ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (seconds per connect and per read),
    ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``
    (seconds; urllib3 sleeps ``factor * 2**(n-1)`` before the n-th retry, none before
    the first) unless the operator set them. A call to a server that accepts
    connections but never answers then fails after about
    ``timeout_s * (max_retries + 1)`` seconds plus the backoff. Processes started
    afterwards inherit the values.

    Args:
        timeout_s: Seconds MLflow waits to connect and for each read, >= 1.
        max_retries: Retries after a failed attempt, >= 0.
        backoff_factor: Backoff factor, seconds, >= 0.

    Returns:
        The variables this call set (empty when the operator set them all).

    Raises:
        ValueError: A limit out of range.
    """
    if timeout_s < 1 or max_retries < 0 or backoff_factor < 0:
        raise ValueError("need timeout_s >= 1, max_retries >= 0 and backoff_factor >= 0")
    wanted = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(max_retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(backoff_factor),
    }
    applied = {k: v for k, v in wanted.items() if k not in os.environ}
    os.environ.update(applied)
    kept = sorted(set(wanted) - set(applied))
    if kept:
        logger.info("MLflow HTTP limits from the environment kept: %s", ", ".join(kept))
    return applied
