"""The default prompt classes, verbosity modifiers and neutral vocabulary.

Factors are multiplicative effects on the output length; the medians are chosen so the
class medians and tails look like public traces (chat and agent calls of a few hundred
tokens, translations as long as their passage, reasoning answers long and heavy-tailed).
"""

from __future__ import annotations

from feature_store.workload._classes import Choice, PromptClass

DEFAULT_MODIFIERS: tuple[Choice, ...] = (
    (" Answer briefly.", 0.4),
    (" Answer in one sentence.", 0.2),
    (" Be concise.", 0.6),
    (" Think step by step.", 1.7),
    (" Explain in detail.", 2.0),
    (" Be thorough and cover every edge case.", 2.5),
)
"""Sentences appended to a prompt, and their effect on the output length."""

SUBJECTS: tuple[str, ...] = (
    "photosynthesis",
    "jazz piano",
    "compound interest",
    "the French Revolution",
    "black holes",
    "sourdough baking",
    "machine learning",
    "urban gardening",
    "the stock market",
    "marathon training",
    "quantum computing",
    "medieval castles",
)
"""Neutral ``{subject}`` fillers (no effect on lengths)."""

PROGRAMMING_LANGUAGES: tuple[str, ...] = (
    "Python",
    "Rust",
    "Go",
    "TypeScript",
    "Java",
    "C++",
    "Kotlin",
    "Ruby",
)
"""Neutral ``{plang}`` fillers (no effect on lengths)."""

CHAT = PromptClass(
    name="chat",
    share=0.34,
    templates=(
        ("Can you explain how {subject} works?", 1.2),
        ("Recommend {n} books about {subject}.", 0.8),
        ("About {subject}: {topic}", 1.0),
        ("What are the pros and cons of {subject}?", 1.1),
        ("Give me {n} fun facts about {subject}.", 0.7),
    ),
    topics=(
        ("what is a good first step for a beginner?", 0.9),
        ("is it worth the effort?", 0.7),
        ("what is the history behind it?", 1.3),
        ("how does it compare to the alternatives?", 1.2),
        ("can you write a short poem about it?", 0.6),
        ("what do experts disagree about?", 1.4),
        ("tell me a joke about it.", 0.3),
    ),
    output_median_tokens=220,
    output_sigma=0.6,
    system_tokens=250,
    accumulates=True,
    steps_median=2.0,
    steps_sigma=0.7,
    steps_max=30,
    gap_median_s=30.0,
    gap_sigma=0.8,
)

CODE_FIX = PromptClass(
    name="code_fix",
    share=0.16,
    templates=(
        ("Fix the {topic} in this {plang} function.", 1.0),
        ("My {plang} service has a {topic}. Find the cause and propose a patch.", 1.3),
        ("This {words}-word {plang} module has a {topic}. Fix it and list {n} test cases.", 1.2),
        ("Review this {plang} code for a {topic} and return only the corrected code.", 0.9),
    ),
    topics=(
        ("typo in a variable name", 0.45),
        ("off-by-one error", 0.7),
        ("import cycle", 0.8),
        ("null pointer dereference", 0.9),
        ("failing unit test", 1.0),
        ("wrong timezone conversion", 1.0),
        ("slow database query", 1.2),
        ("memory leak in the cache layer", 1.5),
        ("race condition in the connection pool", 1.7),
        ("deadlock between two worker threads", 1.8),
    ),
    output_median_tokens=320,
    output_sigma=0.55,
    tail_alpha=1.6,
    system_tokens=400,
    context_median_tokens=900,
    context_sigma=0.9,
    context_elasticity=0.3,
    accumulates=True,
    steps_median=1.3,
    steps_sigma=0.6,
    steps_max=8,
    gap_median_s=60.0,
)

SUMMARIZE = PromptClass(
    name="summarize",
    share=0.15,
    templates=(
        ("Summarize the attached {topic} of about {words} words.", 1.0),
        ("Give me the {n} key points of this {words}-word {topic}.", 0.9),
        ("Write a TL;DR of the following {topic}.", 0.5),
        ("Write an executive summary of this {words}-word {topic} on {subject}.", 1.4),
    ),
    topics=(
        ("meeting transcript", 1.0),
        ("research paper", 1.3),
        ("news article", 0.8),
        ("legal contract", 1.4),
        ("customer support thread", 0.8),
        ("quarterly earnings report", 1.1),
        ("product specification", 1.0),
        ("podcast transcript", 0.9),
    ),
    output_median_tokens=220,
    output_sigma=0.45,
    tail_probability=0.02,
    tail_alpha=1.8,
    system_tokens=150,
    context_median_tokens=2500,
    context_sigma=0.9,
    context_elasticity=0.35,
)

MATH_REASONING = PromptClass(
    name="math_reasoning",
    share=0.10,
    templates=(
        ("Solve: {topic}", 1.0),
        ("{topic} Show your reasoning.", 1.3),
        ("A student asks: {topic} Give {n} different approaches.", 1.6),
        ("Check my answer to this problem: {topic}", 0.8),
    ),
    topics=(
        ("What is 17 times 23?", 0.15),
        ("Find all real roots of x^3 - 6x^2 + 11x - 6.", 0.8),
        ("Evaluate the integral of x^2 e^x from 0 to 1.", 0.9),
        ("Prove that the square root of 2 is irrational.", 1.0),
        ("What is the probability of at least two sixes in ten dice rolls?", 1.0),
        ("In how many ways can 8 rooks be placed on a chessboard so none attack?", 1.2),
        ("Find the shortest closed walk visiting every vertex of a 4x4 grid graph.", 1.8),
        ("Prove there are infinitely many primes of the form 4k+3.", 2.2),
    ),
    output_median_tokens=500,
    output_sigma=0.7,
    tail_probability=0.05,
    tail_alpha=1.3,
    system_tokens=100,
)

TRANSLATE = PromptClass(
    name="translate",
    share=0.15,
    templates=(
        ("Translate the following {words}-word passage into {topic}.", 1.0),
        ("Translate this {words}-word product description to {topic}, keep the format.", 1.05),
        ("Translate to {topic}: the attached {words}-word email about {subject}.", 1.0),
    ),
    topics=(
        ("German", 1.2),
        ("French", 1.15),
        ("Spanish", 1.1),
        ("Portuguese", 1.1),
        ("Japanese", 1.35),
        ("Chinese", 0.95),
        ("Hindi", 1.7),
    ),
    modifiers=False,
    output_median_tokens=350,
    output_sigma=0.12,
    tail_probability=0.005,
    system_tokens=80,
    context_median_tokens=350,
    context_sigma=1.0,
    context_elasticity=1.0,
)

AGENT_OBSERVATION = PromptClass(
    name="agent_observation",
    share=0.07,
    templates=(
        ("Observation (step {step}): {topic}. What is your next command?", 1.0),
        ("Tool output for step {step}: {topic}. Continue fixing the {plang} repository.", 1.1),
        ("Step {step} result: {topic}. If the task is done, submit; else run a command.", 0.8),
    ),
    topics=(
        ("`ls src/` printed 12 files", 0.6),
        ("`sed -i` edit applied with no output", 0.6),
        ("`python reproduce.py` exited with code 0", 0.8),
        ("`grep -rn parse_date` found 9 matches", 0.9),
        ("`cat setup.cfg` printed 85 lines", 0.9),
        ("`git diff` showed 40 changed lines", 1.2),
        ("`pip install -e .` failed with a build error", 1.5),
        ("`pytest -q` failed with 3 errors and a traceback", 1.8),
    ),
    modifiers=False,
    output_median_tokens=160,
    output_sigma=0.75,
    tail_probability=0.05,
    tail_alpha=1.4,
    system_tokens=1800,
    context_median_tokens=350,
    context_sigma=1.1,
    context_elasticity=0.15,
    accumulates=True,
    steps_median=14.0,
    steps_sigma=0.7,
    steps_max=80,
    gap_median_s=1.5,
    gap_sigma=1.2,
)

DEFAULT_PROMPT_CLASSES: tuple[PromptClass, ...] = (
    CHAT,
    CODE_FIX,
    SUMMARIZE,
    MATH_REASONING,
    TRANSLATE,
    AGENT_OBSERVATION,
)
"""The six classes of the default workload."""
