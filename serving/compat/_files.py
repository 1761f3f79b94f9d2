"""llm-d's model files, answered from the loaded TTFT and TPOT champions.

llm-d's training server keeps ``ttft.joblib``, ``tpot.joblib`` (and scalers and
queue-gated ensembles) on disk; its prediction servers poll ``/model/{name}/info``
and download newer files. tailcast's "file" of ``ttft`` / ``tpot`` is the loaded
champion's predictor bundle (``spec.json``, ``arrays.npz``, see ``docs/predictors.md``)
as a ``.tar.gz`` (stored, not compressed), modified when its registry version was
created. The scaler and gated names are listed, never present: tailcast's predictors
standardize their own inputs and have no queue-gated ensemble.

Example:
    >>> MODEL_NAMES[:2], registry_path("llm-d.ttft", 3)
    (('ttft', 'tpot'), 'models:/llm-d.ttft/3')
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from serving._models import LoadedModel

#: Every model name llm-d's training server answers for, in its order.
MODEL_NAMES = ("ttft", "tpot", "ttft_scaler", "tpot_scaler", "ttft_gated", "tpot_gated")
#: Bundles kept serialized (two per served TTFT/TPOT pair, with room for a swap).
_CACHE_SIZE = 8


def registry_path(served_model: str, version: int) -> str:
    """The name of one registered version (llm-d's ``path`` field)."""
    return f"models:/{served_model}/{version}"


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One champion as a file.

    Attributes:
        data: The predictor bundle as a gzipped tar.
        path: Its registered version (``models:/<served model>/<version>``).
        modified: When its registry version was created (UTC).
    """

    data: bytes
    path: str
    modified: datetime

    def info(self, name: str) -> dict[str, Any]:
        """llm-d's ``/models/list`` entry of this file."""
        return {
            "exists": True,
            "size_bytes": len(self.data),
            "last_modified": self.modified.isoformat(),
            "model_name": name,
            "path": self.path,
        }


def _tar_bytes(root: Path, mtime: float) -> bytes:
    """The bundle as a ``.tar.gz`` stored without compression (gzip level 0).

    Weights hardly compress, and stored blocks make the size a function of the
    architecture alone: a retrain of the same shape keeps ``size_bytes``, a wider one
    grows it (llm-d's clients take growth as the sign of a retrain). The tar ends at its
    end-of-archive marker, without padding to a 10 KiB record, which would hide growth.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
            if path.is_file():
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
        end = tar.offset + 2 * tarfile.BLOCKSIZE
    return gzip.compress(buf.getvalue()[:end], compresslevel=0, mtime=int(mtime))


class ModelFiles:
    """Serializes loaded champions once per registry version (thread-safe)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], ModelFile] = {}
        self._lock = threading.Lock()

    def file(self, model: LoadedModel) -> ModelFile:
        """The file of ``model`` (built on first use, then cached)."""
        key = (model.served_model, model.version.version)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        created = model.version.created_at
        with tempfile.TemporaryDirectory(prefix="tailcast-llmd-") as tmp:
            root = model.predictor.save(Path(tmp) / "bundle")
            data = _tar_bytes(root, created.timestamp())
        made = ModelFile(data, registry_path(*key), created)
        with self._lock:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = made
        return made

    def listing(
        self, ttft: LoadedModel | None, tpot: LoadedModel | None
    ) -> dict[str, dict[str, Any]]:
        """llm-d's ``models`` map: every name, with size and time where it exists."""
        present = {"ttft": ttft, "tpot": tpot}
        out: dict[str, dict[str, Any]] = {}
        for name in MODEL_NAMES:
            model = present.get(name)
            if model is None:
                out[name] = {"exists": False, "size_bytes": 0, "last_modified": None}
            else:
                out[name] = self.file(model).info(name)
        return out


def export_bundle(files: dict[str, ModelFile], meta: dict[str, Any]) -> bytes:
    """``/model/export``: each file as ``<name>.tar.gz`` plus ``metadata.json``, gzipped."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        members = {f"{n}.tar.gz": (f.data, f.modified.timestamp()) for n, f in files.items()}
        now = max((t for _, t in members.values()), default=0.0)
        members["metadata.json"] = (json.dumps(meta, indent=2).encode(), now)
        for arcname, (data, mtime) in members.items():
            info = tarfile.TarInfo(arcname)
            info.size, info.mtime = len(data), mtime
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
