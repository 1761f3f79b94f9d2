"""A :class:`RecordStore` that speaks to the tailcast service brokering a DuckDB file.

While ``tailcast serve`` owns ``<home>/store.duckdb`` (DuckDB allows one writer
process), :func:`feature_store.open_store` hands other processes a :class:`RemoteStore`
for it. It calls the service's ``/v1/store/*`` endpoints with the standard library
(``urllib``): Arrow IPC streams for raw ingest batches, training frames and
embeddings; JSON for everything else. A whole file's batches go up as one chunked
request body that the service spools and ingests in one transaction, so the contract
of :meth:`RecordStore.ingest_batches` holds: every valid record or nothing.

Every failure is a :class:`core.StoreError` naming the service and the reason (its
HTTP status and detail, or why it could not be reached).
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pydantic import TypeAdapter

from core import IngestReport, StoreError
from core.drift import AlertMessage
from feature_store._base import (
    EndpointStats,
    PreviousCall,
    Progress,
    RecordStore,
    StoreLock,
    StoreStats,
)
from feature_store._remote_drift import RemoteDriftReads
from feature_store._remote_lock import RemoteLock
from feature_store._wire import (
    ARROW_STREAM,
    bytes_table,
    stream_tables,
    table_bytes,
    table_vectors,
    vectors_table,
)

#: Largest embedding upload per request, bytes (the service's default body limit is 64 MiB).
EMBEDDING_CHUNK_BYTES = 32 * 2**20
#: Lease of a named lock the service holds for this process, seconds (renewed every third).
LOCK_LEASE_S = 30.0
_JSON = "application/json"
#: Most request ids per ``previous_calls`` call (the service's limit; larger asks are split).
_MAX_IDS = 10_000
_Query = Mapping[str, object]


class BrokerError(StoreError):
    """The brokering service answered with an HTTP error.

    Attributes:
        status: The HTTP status code.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RemoteStore(RemoteDriftReads, RecordStore):
    """The store of a running tailcast service, over HTTP.

    Args:
        url: The service's base URL, e.g. ``http://127.0.0.1:8000``.
        token: Its API token (``Settings.api_token``), sent as a bearer token.
        path: The store file the service owns (for messages and :attr:`path`).
        timeout_s: Seconds any one socket operation may wait (an ingest or a frame
            of a large store takes a while on the service).
        read_only: Refuse writes (as a DuckDB file opened ``read_only``).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        path: str | None = None,
        timeout_s: float = 600.0,
        read_only: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.path = path or self.url
        self.timeout_s = timeout_s
        self.read_only = read_only
        self._token = token
        # Loopback traffic must never go through an http_proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        return f"RemoteStore({self.url!r}, path={self.path!r})"

    # --- HTTP --------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        query: _Query | None = None,
        body: bytes | Iterable[bytes] | None = None,
        content_type: str = _JSON,
    ) -> bytes:
        """One request to ``/v1/store<path>``; the response body.

        Raises:
            StoreError: The service answered 4xx/5xx, or could not be reached.
        """
        url = f"{self.url}/v1/store{path}"
        if query:
            params = {k: _param(v) for k, v in query.items() if v is not None}
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        headers = {"Accept": f"{_JSON}, {ARROW_STREAM}"}
        if body is not None:
            headers["Content-Type"] = content_type
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as exc:
            raise BrokerError(
                f"the tailcast service at {self.url} (brokering {self.path}) answered "
                f"{exc.code} to {method} /v1/store{path}: {_detail(exc)}",
                exc.code,
            ) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise StoreError(
                f"cannot reach the tailcast service at {self.url} brokering {self.path}: {reason}"
            ) from exc

    def _json(self, method: str, path: str, query: _Query | None = None, **body: Any) -> bytes:
        payload = json.dumps(body, default=_json_default).encode() if body else None
        return self._call(method, path, query, payload)

    def _writable(self) -> None:
        if self.read_only:
            raise StoreError(f"feature store {self.path} was opened read-only")

    def ping(self) -> dict[str, Any]:
        """What the service says about its store (``backend``, ``path``, ``pid``).

        Raises:
            StoreError: Unreachable, or the token is refused.
        """
        info: dict[str, Any] = json.loads(self._call("GET", ""))
        return info

    # --- writes --------------------------------------------------------------------
    def ingest_batches(
        self,
        batches: Iterable[pa.Table],
        source: str | None = None,
        progress: Progress | None = None,
        *,
        judge: bool = True,
    ) -> IngestReport:
        """See :meth:`RecordStore.ingest_batches`: one request, one transaction.

        An exception raised while reading ``batches`` (e.g. a truncated file) aborts
        the upload, so the service writes nothing, and is re-raised as is.
        """
        self._writable()
        failure: list[BaseException] = []

        def body() -> Iterator[bytes]:
            try:
                yield from stream_tables(batches, progress)
            except BaseException as exc:
                failure.append(exc)
                raise

        try:
            query = {"source": source, "judge": judge}
            raw = self._call("POST", "/ingest", query, body(), ARROW_STREAM)
        except BaseException:
            if failure:
                raise failure[0] from None
            raise
        return IngestReport.model_validate_json(raw)

    def ingest_rows(
        self, rows: Sequence[Mapping[str, Any]], source: str | None = None
    ) -> IngestReport:
        """See :meth:`RecordStore.ingest_rows` (sent as JSON; datetimes as ISO-8601)."""
        self._writable()
        raw = self._json("POST", "/rows", rows=list(rows), source=source)
        return IngestReport.model_validate_json(raw)

    def put_embeddings(
        self, encoder_id: str, prompt_sha256: Sequence[str], vectors: npt.NDArray[np.float32]
    ) -> int:
        """See :meth:`RecordStore.put_embeddings` (uploaded in chunks of at most 32 MiB)."""
        self._writable()
        if len(prompt_sha256) != len(vectors):
            raise ValueError(f"{len(prompt_sha256)} keys but {len(vectors)} vectors")
        if not len(prompt_sha256):
            return 0
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
        step = max(1, EMBEDDING_CHUNK_BYTES // (4 * matrix.shape[1] + 80))
        new = 0
        for i in range(0, len(prompt_sha256), step):
            table = vectors_table(list(prompt_sha256[i : i + step]), matrix[i : i + step], "key")
            raw = self._call(
                "POST", "/embeddings", {"encoder_id": encoder_id}, table_bytes(table), ARROW_STREAM
            )
            new += int(json.loads(raw)["new"])
        return new

    # --- reads ---------------------------------------------------------------------
    def get_embeddings(
        self, encoder_id: str, prompt_sha256: Sequence[str]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        """See :meth:`RecordStore.get_embeddings`."""
        keys = pa.table({"key": pa.array(list(prompt_sha256), pa.string())})
        raw = self._call(
            "POST",
            "/embeddings/lookup",
            {"encoder_id": encoder_id},
            table_bytes(keys),
            ARROW_STREAM,
        )
        found = bytes_table(raw)
        mask = np.asarray(found.column("found").to_numpy(zero_copy_only=False), dtype=np.bool_)
        return mask, table_vectors(found)

    def prompts_missing_embeddings(self, encoder_id: str) -> Iterator[tuple[str, str]]:
        """See :meth:`RecordStore.prompts_missing_embeddings`."""
        table = bytes_table(self._call("GET", "/embeddings/missing", {"encoder_id": encoder_id}))
        yield from zip(
            table.column("sha256").to_pylist(), table.column("text").to_pylist(), strict=True
        )

    def training_frame(
        self,
        served_model: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        columns: Sequence[str] | None = None,
        *,
        as_of: datetime | None = None,
        require: Sequence[str] = ("latency_s",),
        endpoint_window: int = 50,
    ) -> pa.Table:
        """See :meth:`RecordStore.training_frame` (the service builds it; Arrow back)."""
        raw = self._json(
            "POST",
            "/frames",
            served_model=served_model,
            start=start,
            end=end,
            columns=None if columns is None else list(columns),
            as_of=as_of,
            require=list(require),
            endpoint_window=endpoint_window,
        )
        return bytes_table(raw)

    def endpoint_stats(
        self, served_model: str, device: str, at: datetime, window: int = 50
    ) -> EndpointStats:
        """See :meth:`RecordStore.endpoint_stats`."""
        query = {"served_model": served_model, "device": device, "at": at, "window": window}
        return EndpointStats.model_validate_json(self._call("GET", "/endpoint-stats", query))

    def previous_calls(self, request_ids: Sequence[str]) -> dict[str, PreviousCall]:
        """See :meth:`RecordStore.previous_calls`."""
        found: dict[str, PreviousCall] = {}
        ids = list(request_ids)
        for i in range(0, len(ids), _MAX_IDS):
            chunk = ids[i : i + _MAX_IDS]
            raw = json.loads(self._json("POST", "/previous-calls", request_ids=chunk))
            found.update((rid, PreviousCall.model_validate(call)) for rid, call in raw.items())
        return found

    def stats(self) -> StoreStats:
        """See :meth:`RecordStore.stats`."""
        return StoreStats.model_validate_json(self._call("GET", "/stats"))

    # --- coordination ------------------------------------------------------------------
    def try_lock(self, name: str) -> StoreLock | None:
        """See :meth:`RecordStore.try_lock`: the service holds it for a renewed lease."""
        try:
            raw = self._call("POST", "/locks", {"name": name, "lease_s": LOCK_LEASE_S}, b"")
        except BrokerError as exc:
            if exc.status == 409:
                return None
            raise
        granted = json.loads(raw)
        return RemoteLock(
            name, str(granted["lock_id"]), LOCK_LEASE_S, self._renew_lock, self._release_lock
        )

    def _renew_lock(self, name: str, lock_id: str) -> bool:
        try:
            self._json("POST", "/locks/renew", name=name, lock_id=lock_id)
        except BrokerError as exc:
            if exc.status == 410:
                return False
            raise
        return True

    def _release_lock(self, name: str, lock_id: str) -> bool:
        self._json("POST", "/locks/release", name=name, lock_id=lock_id)
        return True

    def drift_inbox_take(self, limit: int = 1000) -> pa.Table:
        """See :meth:`RecordStore.drift_inbox_take`."""
        return bytes_table(self._call("GET", "/drift/inbox", {"limit": limit}))

    def drift_inbox_ack(self, request_ids: Sequence[str]) -> int:
        """See :meth:`RecordStore.drift_inbox_ack`."""
        self._writable()
        return int(
            json.loads(self._json("POST", "/drift/inbox/ack", request_ids=list(request_ids)))
        )

    def drift_inbox_size(self) -> int:
        """See :meth:`RecordStore.drift_inbox_size`."""
        return int(json.loads(self._call("GET", "/drift/inbox/size")))

    def claim_alerts(
        self, now: datetime, holder: str, lease_s: float = 60.0, limit: int = 100
    ) -> list[AlertMessage]:
        """See :meth:`RecordStore.claim_alerts`."""
        self._writable()
        raw = self._json(
            "POST", "/drift/claims", now=now, holder=holder, lease_s=lease_s, limit=limit
        )
        return TypeAdapter(list[AlertMessage]).validate_json(raw)

    def close(self) -> None:
        """Nothing to release: every call is one request (the service keeps the store)."""


def _param(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _detail(exc: urllib.error.HTTPError) -> str:
    """The ``detail`` of a FastAPI error body, else the body's text, else the reason."""
    try:
        text = exc.read().decode("utf-8", "replace")
    except OSError:
        text = ""
    try:
        detail = json.loads(text)["detail"]
    except (ValueError, KeyError, TypeError):
        return text.strip()[:500] or str(exc.reason)
    return detail if isinstance(detail, str) else json.dumps(detail)[:500]
