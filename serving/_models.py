"""The in-memory model table: the predictor each served model answers with.

Readers take one :class:`LoadedModel` reference and use it for a whole request, so a
swap never changes a model under a request in flight. Writers replace the whole dict
reference (never mutate it), which is atomic for readers.

Example:
    >>> table = ModelTable()
    >>> table.get("m") is None, table.names()
    (True, ())
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from core.predictor import Predictor
from serving._prompt_cache import PromptCache

if TYPE_CHECKING:
    from registry import ModelVersion


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """One served model's predictor as loaded from the registry.

    Attributes:
        served_model: The served model (``deepseek-chat``).
        predictor: The loaded predictor bundle.
        version: The registry version it was loaded from (aliases as at load time).
        loaded_at: When the load finished (UTC).
        prompts: Projected prompt features of this predictor, by prompt hash (a new
            version starts with an empty cache).
    """

    served_model: str
    predictor: Predictor
    version: ModelVersion
    loaded_at: datetime
    prompts: PromptCache = field(default_factory=PromptCache)


class ModelTable:
    """Served model name -> :class:`LoadedModel`, swapped atomically."""

    def __init__(self) -> None:
        self._models: Mapping[str, LoadedModel] = MappingProxyType({})
        self._write = threading.Lock()

    def get(self, served_model: str) -> LoadedModel | None:
        """The loaded model of ``served_model``, or ``None``."""
        return self._models.get(served_model)

    def snapshot(self) -> Mapping[str, LoadedModel]:
        """Every loaded model, as one consistent read-only mapping."""
        return self._models

    def names(self) -> tuple[str, ...]:
        """Served models with a loaded predictor, sorted."""
        return tuple(sorted(self._models))

    def swap(self, model: LoadedModel) -> LoadedModel | None:
        """Install ``model`` for its served model; returns the model it replaced."""
        with self._write:
            old = self._models.get(model.served_model)
            self._models = MappingProxyType({**self._models, model.served_model: model})
        return old
