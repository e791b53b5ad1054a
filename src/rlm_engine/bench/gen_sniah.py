"""S-NIAH: one needle in a haystack (RULER's single-needle task).

Needle: "One of the special magic {numbers|uuids} for {key} is: {value}." with an
adjective-noun key and a 7-digit number or a UUID; haystack of a repeated noise passage or
essay-like prose; depth from 40 evenly spaced positions in 0-100%.
"""

from __future__ import annotations

import random
import uuid

from rlm_engine.bench.sizes import CHARS_PER_TOKEN
from rlm_engine.bench.solution_code import ASK_FACT_CODE, PACK_CODE, finish
from rlm_engine.bench.task import Task, task_id
from rlm_engine.bench.words import (
    ADJECTIVES,
    NOISE_PASSAGE,
    NOUNS,
    essay_paragraph,
    pick,
)
from rlm_engine.sim.oracle_registry import OracleFact

DEPTHS = tuple(i / 39 for i in range(40))


def _value(rng: random.Random, kind: str) -> str:
    if kind == "number":
        return str(rng.randrange(1_000_000, 10_000_000))
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _haystack(rng: random.Random, kind: str, target_chars: int) -> list[str]:
    lines: list[str] = []
    size = 0
    while size < target_chars:
        line = NOISE_PASSAGE if kind == "noise" else essay_paragraph(rng)
        lines.append(line)
        size += len(line) + 1
    return lines


def fact_question(value_kind: str, key: str) -> str:
    """The sub-question the solution asks each chunk."""
    return f"What is the special magic {value_kind} for {key}?"


def generate(size_tokens: int, index: int, seed: int) -> Task:
    """The ``index``-th S-NIAH task of ``size_tokens`` tokens."""
    rng = random.Random(f"sniah:{seed}:{size_tokens}:{index}")
    value_kind = ("number", "uuid")[index % 2]
    haystack_kind = ("noise", "essay")[(index // 2) % 2]
    depth = DEPTHS[(index * 13 + seed) % len(DEPTHS)]
    key = f"{pick(rng, ADJECTIVES)}-{pick(rng, NOUNS)}"
    value = _value(rng, value_kind)
    needle = f"One of the special magic {value_kind}s for {key} is: {value}."
    lines = _haystack(rng, haystack_kind, size_tokens * CHARS_PER_TOKEN - len(needle))
    lines.insert(round(depth * len(lines)), needle)
    context = "\n".join(lines) + "\n"
    sub_question = fact_question(value_kind, key)
    solution = (
        PACK_CODE
        + ASK_FACT_CODE
        + "CHUNK = max(8_000, min(100_000, len(context) // 8))\n"
        + "texts = ['\\n'.join(c) for c in pack(context.splitlines(), CHUNK)]\n"
        + finish(f"ask_fact({sub_question!r}, texts)")
    )
    return Task(
        id=task_id("sniah", size_tokens, index, seed),
        suite="sniah",
        size_tokens=size_tokens,
        question=(
            f"What is the special magic {value_kind} for {key} mentioned in the provided text?"
        ),
        context=context,
        answer=value,
        solution=solution,
        facts=(OracleFact(sub_question, needle, value),),
        meta={"value_kind": value_kind, "haystack": haystack_kind, "depth": f"{depth:.3f}"},
    )
