"""Synthetic demo workloads: seeded completion records with realistic structure.

:func:`generate_workload` builds a table of :class:`core.CompletionRecord` rows from
prompt classes with generated text, heavy-tailed lengths, agentic sessions, several
device types whose speeds derive from datasheet figures (:mod:`core.devices`), and a
time-varying load that slows requests down. :func:`write_workload` writes it as
Parquet, CSV or JSON lines. See ``docs/workload.md``.

>>> table = generate_workload(WorkloadConfig(n_records=1_000, seed=1))
>>> table.num_rows, table.schema == WORKLOAD_SCHEMA
(1000, True)
"""

from feature_store.workload._catalog import DEFAULT_MODIFIERS, DEFAULT_PROMPT_CLASSES
from feature_store.workload._classes import Choice, PromptClass
from feature_store.workload._config import DEFAULT_DEVICE_MIX, WorkloadConfig
from feature_store.workload._generate import generate_workload
from feature_store.workload._io import FORMATS, write_workload
from feature_store.workload._latency import NoiseConfig
from feature_store.workload._load import LoadConfig
from feature_store.workload._models import DEFAULT_MODELS, LLAMA_8B, LLAMA_70B, ServedModel
from feature_store.workload._schema import WORKLOAD_SCHEMA
from feature_store.workload._speed import DeviceSpeed, SpeedConfig, device_speed
from feature_store.workload._text import token_count

__all__ = [
    "DEFAULT_DEVICE_MIX",
    "DEFAULT_MODELS",
    "DEFAULT_MODIFIERS",
    "DEFAULT_PROMPT_CLASSES",
    "FORMATS",
    "LLAMA_8B",
    "LLAMA_70B",
    "WORKLOAD_SCHEMA",
    "Choice",
    "DeviceSpeed",
    "LoadConfig",
    "NoiseConfig",
    "PromptClass",
    "ServedModel",
    "SpeedConfig",
    "WorkloadConfig",
    "device_speed",
    "generate_workload",
    "token_count",
    "write_workload",
]
