"""The generated data has the structure predictors are meant to learn (checked statistically)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_store.workload import DEFAULT_PROMPT_CLASSES, WorkloadConfig, generate_workload


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    frame: pd.DataFrame = generate_workload(WorkloadConfig(seed=11, n_records=50_000)).to_pandas()
    frame["tpot_s"] = (frame.latency_s - frame.ttft_s) / frame.output_tokens
    return frame


def test_every_class_device_and_model_appears(df: pd.DataFrame) -> None:
    assert set(df.prompt_class) == {c.name for c in DEFAULT_PROMPT_CLASSES}
    assert set(df.served_model) == {"llama-3.1-8b", "llama-3.1-70b"}
    assert len(set(df.device)) >= 8
    assert "gh200" not in set(df.device)  # kept unseen on purpose


def test_output_lengths_are_heavy_tailed_per_class(df: pd.DataFrame) -> None:
    out = df.groupby("prompt_class").output_tokens
    ratio = out.quantile(0.99) / out.median()
    assert (ratio > 5).all(), ratio.to_dict()
    assert (df.output_tokens >= 1).all()


def test_agent_sessions_are_long_and_heavy_tailed(df: pd.DataFrame) -> None:
    agent = df[df.prompt_class == "agent_observation"]
    k = agent.groupby("workflow_id").step.max() + 1
    assert k.median() >= 8
    assert k.quantile(0.9) / k.median() > 2
    single = df[df.prompt_class.isin(["summarize", "translate", "math_reasoning"])]
    assert (single.step == 0).all()


def test_agent_context_accumulates_and_is_cached(df: pd.DataFrame) -> None:
    agent = df[df.prompt_class == "agent_observation"].sort_values(["workflow_id", "step"])
    grows = agent.groupby("workflow_id").input_tokens.apply(lambda s: bool(np.all(np.diff(s) > 0)))
    assert grows.all()
    later = agent[agent.step > 0]
    assert (later.cached_tokens > 0).mean() > 0.5
    assert (later.cached_tokens / later.input_tokens).median() > 0.8
    by_step = agent.groupby("step").input_tokens.median()
    assert by_step.loc[10] > 3 * by_step.loc[0]


def test_load_slows_decoding_within_each_replica(df: pd.DataFrame) -> None:
    for (device, model), g in df.groupby(["device", "served_model"]):
        lo = g[g.num_running <= g.num_running.quantile(0.25)].tpot_s.median()
        hi = g[g.num_running >= g.num_running.quantile(0.75)].tpot_s.median()
        assert hi > 1.05 * lo, (device, model, lo, hi)
    for key, g in df.groupby(["device", "served_model"]):
        rank_corr = float(g["num_running"].rank().corr(g["tpot_s"].rank()))
        assert rank_corr > 0.3, (key, rank_corr)


def test_queueing_delays_the_first_token(df: pd.DataFrame) -> None:
    waiting = df.num_waiting > 0
    assert 0.02 < waiting.mean() < 0.5
    assert df[waiting].ttft_s.median() > 5 * df[~waiting].ttft_s.median()


def test_faster_devices_decode_faster(df: pd.DataFrame) -> None:
    tpot = df.groupby(["served_model", "device"]).tpot_s.median()
    small, big = tpot["llama-3.1-8b"], tpot["llama-3.1-70b"]
    assert small["h200"] < small["h100-sxm"] < small["a100-80gb"] < small["l4"]
    assert (big > small).all()


@pytest.mark.parametrize("cls", ["chat", "code_fix", "summarize", "math_reasoning"])
def test_wording_shifts_output_length_within_a_class(df: pd.DataFrame, cls: str) -> None:
    c = df[df.prompt_class == cls]
    detail = c[c.prompt.str.contains("in detail")].output_tokens.median()
    brief = c[c.prompt.str.contains("briefly")].output_tokens.median()
    sentence = c[c.prompt.str.contains("in one sentence")].output_tokens.median()
    assert detail > 3 * brief > 3 * sentence


def test_requested_item_count_shifts_output_length(df: pd.DataFrame) -> None:
    books = df[df.prompt.str.startswith("Recommend ")]
    n = books.prompt.str.extract(r"Recommend (\d+) books")[0].astype(int)
    assert books[n >= 10].output_tokens.median() > 1.5 * books[n <= 3].output_tokens.median()


def test_translation_length_follows_the_stated_passage(df: pd.DataFrame) -> None:
    t = df[df.prompt_class == "translate"]
    words = t.prompt.str.extract(r"(\d+)-word")[0].astype(float)
    corr = np.corrcoef(np.log(words), np.log(t.output_tokens))[0, 1]
    assert corr > 0.9


def test_topic_carries_signal_beyond_the_class(df: pd.DataFrame) -> None:
    code = df[df.prompt_class == "code_fix"]
    hard = code[code.prompt.str.contains("deadlock")].output_tokens.median()
    easy = code[code.prompt.str.contains("typo in a variable")].output_tokens.median()
    assert hard > 2.5 * easy


def test_input_tokens_follow_the_text(df: pd.DataFrame) -> None:
    math = df[df.prompt_class == "math_reasoning"]  # no attached context, no history
    expected = 100 + np.ceil(math.prompt.str.len() / 4)
    assert (math.input_tokens == expected).all()
