"""Measured device latencies, composed into a latency for a request of given lengths.

Sources without an outcome (arrival traces, prompt sets) can be given a latency
drawn from real measurements of a model on a device. A :class:`DeviceProfile` holds
the measurements of one ``(model, hardware, batch_size)`` configuration from one of
two shared files:

* ``device_latency/splitwise_perf_model.csv`` (splitwise-sim): ``prompt_time`` (ms,
  prefill of ``prompt_size`` tokens) and ``token_time`` (ms per output token) at
  several prompt and output (``token_size``) sizes, with repeated measurements. For
  Llama2-70B the file mixes three tensor-parallel degrees (option
  ``tensor_parallel``, default: the largest measured), and repeats the base
  configuration (prompt 512, 128 output tokens) verbatim once per sweep; exact
  duplicates are dropped, so every configuration keeps its distinct repeats.
* ``device_latency/llm_inference_bench_all_results.csv`` (LLM-Inference-Bench): one
  end-to-end ``Latency`` (s) for ``L`` input and ``L`` output tokens. Prefill is not
  separated, so the profile uses ``per_token = Latency / L`` (prefill amortised into
  the per-token time) and leaves ``ttft_s`` unknown. Options ``framework`` and
  ``num_hardware`` pick one setup when several ran the configuration.

**Composition.** For a request of ``input_tokens`` and ``output_tokens``:

1. the *nearest measured prompt size* to ``input_tokens`` is chosen (ties go to the
   larger size; no interpolation: sizes below or above the measured range take the
   smallest or largest size, which under-estimates prefill for very long prompts);
2. among the measurements at that prompt size, the *nearest measured output size* to
   ``output_tokens`` is chosen the same way;
3. ONE real measurement of that configuration is drawn uniformly with the caller's
   seeded :class:`numpy.random.Generator` (one ``random()`` draw per request, so the
   draws do not depend on batch boundaries), and

   ``ttft_s = prompt_time / 1000`` and
   ``latency_s = prompt_time / 1000 + output_tokens * token_time / 1000``

   with both times taken from that same measured row (the spread is real).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from core.errors import InputError

SPLITWISE_COLUMNS = frozenset(
    {"model", "hardware", "prompt_size", "batch_size", "token_size", "prompt_time"}
    | {"token_time", "tensor_parallel"}
)
BENCH_COLUMNS = frozenset(
    {"Hardware", "Num of Hardware", "Framework", "Model", "Input Output Length"}
    | {"Batch Size", "Latency"}
)
DEFAULT_MODEL = "llama2-70b"
DEFAULT_HARDWARE = "h100-80gb"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Composition(NamedTuple):
    """Composed outcomes, one per request.

    Attributes:
        latency_s: End-to-end latency in seconds.
        ttft_s: Time to first token (the prefill part) in seconds; NaN when unknown.
        measurement: Index of the drawn measurement in the profile's arrays.
    """

    latency_s: FloatArray
    ttft_s: FloatArray
    measurement: IntArray


def _nearest(grid: npt.NDArray[np.float64], values: FloatArray) -> IntArray:
    """Index in the sorted ``grid`` nearest to each value (ties: the larger)."""
    upper = np.clip(np.searchsorted(grid, values, side="left"), 0, len(grid) - 1)
    lower = np.clip(upper - 1, 0, len(grid) - 1)
    closer_below = np.abs(values - grid[lower]) < np.abs(grid[upper] - values)
    return np.where(closer_below, lower, upper).astype(np.int64)


def _choices(frame: pd.DataFrame, columns: list[str]) -> str:
    combos = frame[columns].drop_duplicates().itertuples(index=False)
    return "; ".join(", ".join(str(v) for v in combo) for combo in combos)


@dataclass(frozen=True, eq=False)
class DeviceProfile:
    """Real latency measurements of one model on one device at one batch size.

    Attributes:
        model: The measured model (as named in the source file).
        hardware: The measured device; importers use it as the records' ``device``.
        batch_size: The measured batch size.
        source: Which file and setup the measurements come from.
        prompt_size: Prompt tokens of each measurement.
        token_size: Output tokens of each measurement.
        prefill_s: Prefill time of each measurement, seconds (NaN: not measured).
        per_token_s: Time per output token of each measurement, seconds.
    """

    model: str
    hardware: str
    batch_size: int
    source: str
    prompt_size: FloatArray
    token_size: FloatArray
    prefill_s: FloatArray
    per_token_s: FloatArray

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        model: str = DEFAULT_MODEL,
        hardware: str = DEFAULT_HARDWARE,
        batch_size: int = 1,
        tensor_parallel: int | None = None,
        framework: str | None = None,
        num_hardware: int | None = None,
    ) -> DeviceProfile:
        """Load one configuration from either measurement file (detected by header).

        Args:
            path: ``splitwise_perf_model.csv`` or ``llm_inference_bench_all_results.csv``.
            model: Model name as in the file (``llama2-70b``, ``meta-llama/Llama-2-70b-hf``).
            hardware: Device as in the file (``h100-80gb``, ``Nvidia H100 GPU``).
            batch_size: Measured batch size.
            tensor_parallel: Splitwise only: tensor-parallel degree (default: largest).
            framework: Benchmark only: serving framework, when several were measured.
            num_hardware: Benchmark only: number of devices, when several were measured.

        Raises:
            core.InputError: Unreadable file, or no measurements for the selection
                (the message lists the available choices).
        """
        path = Path(path)
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read device measurements: {exc}", file=str(path)) from exc
        if set(frame.columns) >= SPLITWISE_COLUMNS:
            return cls._splitwise(frame, path, model, hardware, batch_size, tensor_parallel)
        if set(frame.columns) >= BENCH_COLUMNS:
            return cls._bench(frame, path, model, hardware, batch_size, framework, num_hardware)
        raise InputError(
            "not a device-latency file: expected the columns of splitwise_perf_model.csv "
            "or llm_inference_bench_all_results.csv",
            file=str(path),
        )

    @classmethod
    def _splitwise(
        cls,
        frame: pd.DataFrame,
        path: Path,
        model: str,
        hardware: str,
        batch_size: int,
        tensor_parallel: int | None,
    ) -> DeviceProfile:
        rows = frame[(frame["model"] == model) & (frame["hardware"] == hardware)]
        if rows.empty:
            known = _choices(frame, ["model", "hardware"])
            raise InputError(
                f"no measurements of {model!r} on {hardware!r}; available: {known}",
                file=str(path),
            )
        degree = tensor_parallel or int(rows["tensor_parallel"].max())
        rows = rows[(rows["tensor_parallel"] == degree) & (rows["batch_size"] == batch_size)]
        if rows.empty:
            known = _choices(frame[frame["model"] == model], ["tensor_parallel", "batch_size"])
            raise InputError(
                f"no measurements of {model!r} on {hardware!r} with tensor_parallel={degree} "
                f"and batch_size={batch_size}; available (tensor_parallel, batch_size): {known}",
                file=str(path),
            )
        rows = rows.drop_duplicates(["prompt_size", "token_size", "prompt_time", "token_time"])
        return cls(
            model=model,
            hardware=hardware,
            batch_size=batch_size,
            source=f"{path.name} (tensor_parallel={degree})",
            prompt_size=rows["prompt_size"].to_numpy(np.float64),
            token_size=rows["token_size"].to_numpy(np.float64),
            prefill_s=rows["prompt_time"].to_numpy(np.float64) / 1000.0,
            per_token_s=rows["token_time"].to_numpy(np.float64) / 1000.0,
        )

    @classmethod
    def _bench(
        cls,
        frame: pd.DataFrame,
        path: Path,
        model: str,
        hardware: str,
        batch_size: int,
        framework: str | None,
        num_hardware: int | None,
    ) -> DeviceProfile:
        selected = (frame["Model"] == model) & (frame["Hardware"] == hardware)
        selected &= frame["Batch Size"] == batch_size
        if framework is not None:
            selected &= frame["Framework"] == framework
        if num_hardware is not None:
            selected &= frame["Num of Hardware"] == num_hardware
        rows = frame[selected]
        setups = ["Framework", "Num of Hardware"]
        if rows.empty or len(rows[setups].drop_duplicates()) > 1:
            candidates = rows if not rows.empty else frame[frame["Model"] == model]
            known = _choices(candidates, [*setups, "Hardware", "Batch Size"])
            raise InputError(
                f"need exactly one measured setup of {model!r} on {hardware!r} at "
                f"batch_size={batch_size}; choose among "
                f"(framework, num_hardware, hardware, batch_size): {known or 'none'}",
                file=str(path),
            )
        length = rows["Input Output Length"].to_numpy(np.float64)
        return cls(
            model=model,
            hardware=hardware,
            batch_size=batch_size,
            source=f"{path.name} ({rows['Framework'].iloc[0]})",
            prompt_size=length,
            token_size=length,
            prefill_s=np.full(len(rows), np.nan),
            per_token_s=rows["Latency"].to_numpy(np.float64) / length,
        )

    def compose(
        self,
        input_tokens: npt.ArrayLike,
        output_tokens: npt.ArrayLike,
        rng: np.random.Generator,
    ) -> Composition:
        """Compose latencies for requests from one real measurement each.

        Args:
            input_tokens: Prompt tokens per request.
            output_tokens: Output tokens per request.
            rng: Seeded generator; exactly one ``rng.random()`` draw per request.

        Returns:
            Latency, ttft and the drawn measurement per request (see module doc).
        """
        inputs = np.asarray(input_tokens, dtype=np.float64)
        outputs = np.asarray(output_tokens, dtype=np.float64)
        draws = rng.random(len(inputs))
        chosen = np.zeros(len(inputs), dtype=np.int64)
        prompt_grid = np.unique(self.prompt_size)
        prompt_pick = _nearest(prompt_grid, inputs)
        for p, prompt in enumerate(prompt_grid):
            requests = np.flatnonzero(prompt_pick == p)
            if not len(requests):
                continue
            at_prompt = np.flatnonzero(self.prompt_size == prompt)
            token_grid = np.unique(self.token_size[at_prompt])
            token_pick = _nearest(token_grid, outputs[requests])
            for t, tokens in enumerate(token_grid):
                these = requests[token_pick == t]
                candidates = at_prompt[self.token_size[at_prompt] == tokens]
                chosen[these] = candidates[(draws[these] * len(candidates)).astype(np.int64)]
        prefill = self.prefill_s[chosen]
        latency = np.nan_to_num(prefill, nan=0.0) + outputs * self.per_token_s[chosen]
        return Composition(latency_s=latency, ttft_s=prefill, measurement=chosen)


ProfileOption = DeviceProfile | str | Path | None
"""An importer's ``profile`` option: a loaded profile, a measurement file, or none."""


def resolve_profile(
    profile: ProfileOption, *, model: str, hardware: str, batch_size: int
) -> DeviceProfile | None:
    """Return ``profile`` loaded (from a path, with the selection given) or as is."""
    if profile is None or isinstance(profile, DeviceProfile):
        return profile
    return DeviceProfile.load(profile, model=model, hardware=hardware, batch_size=batch_size)


def outcome_columns(
    profile: DeviceProfile,
    input_tokens: list[int | None],
    output_tokens: list[int | None],
    rng: np.random.Generator,
) -> dict[str, pa.Array]:
    """Compose ``latency_s`` and ``ttft_s`` columns for one batch of requests.

    Rows with an unknown length get null outcomes but still consume their draw, so
    the draws stay aligned with the rows whatever the batch boundaries.
    """
    known = np.array(
        [i is not None and o is not None for i, o in zip(input_tokens, output_tokens, strict=True)],
        dtype=bool,
    )
    inputs = np.array([i or 0 for i in input_tokens], dtype=np.float64)
    outputs = np.array([o or 0 for o in output_tokens], dtype=np.float64)
    composed = profile.compose(inputs, outputs, rng)
    return {
        "latency_s": pa.array(composed.latency_s, mask=~known),
        "ttft_s": pa.array(composed.ttft_s, mask=~known | np.isnan(composed.ttft_s)),
    }
