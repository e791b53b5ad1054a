"""A CodeQA-like set: multiple-choice questions about a generated Python repository.

The repository is a mapping of paths to sources; each function raises its own error type
and delegates to another function. Questions ask which function raises a given error, or
which function a given function delegates to, with four options naming real functions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rlm_engine.bench.sizes import CHARS_PER_TOKEN
from rlm_engine.bench.solution_code import ASK_FACT_CODE, PACK_CODE, finish
from rlm_engine.bench.task import Task, task_id
from rlm_engine.bench.words import ADJECTIVES, NOUNS, VERBS, essay_sentence, pick
from rlm_engine.sim.oracle_registry import OracleFact

LETTERS = "ABCD"


@dataclass(frozen=True, slots=True)
class _Function:
    name: str
    error: str
    callee: str
    source: str


def _names(rng: random.Random, count: int) -> list[str]:
    seen: dict[str, None] = {}
    while len(seen) < count:
        seen[f"{pick(rng, VERBS)}_{pick(rng, ADJECTIVES)}_{pick(rng, NOUNS)}"] = None
    return list(seen)


def _source(rng: random.Random, name: str, error: str, callee: str) -> str:
    factor, offset = rng.randint(2, 9), rng.randint(1, 99)
    return (
        f"def {name}(value, factor={factor}):\n"
        f'    """{essay_sentence(rng)}"""\n'
        f"    total = value * factor + {offset}\n"
        f"    if total < 0:\n"
        f'        raise {error}("{name.replace("_", " ")} got a negative total")\n'
        f"    return {callee}(total)\n"
    )


def _repository(rng: random.Random, target: int) -> tuple[dict[str, str], list[_Function]]:
    count = max(8, target // 420)
    names = _names(rng, count)
    functions: list[_Function] = []
    for position, name in enumerate(names):
        error = "".join(part.title() for part in name.split("_")[1:]) + "Error"
        callee = names[(position + rng.randint(1, count - 1)) % count]
        functions.append(_Function(name, error, callee, _source(rng, name, error, callee)))
    per_file = max(2, count // max(2, target // 6000))
    repo: dict[str, str] = {}
    for start in range(0, count, per_file):
        group = functions[start : start + per_file]
        path = f"pkg/{pick(rng, NOUNS)}_{start // per_file:03d}.py"
        errors = "".join(f"class {f.error}(ValueError):\n    pass\n\n\n" for f in group)
        repo[path] = (
            f'"""{essay_sentence(rng)}"""\n\n\n' + errors + "\n\n".join(f.source for f in group)
        )
    return repo, functions


def _question(rng: random.Random, gold: _Function, functions: list[_Function]) -> tuple[str, str]:
    """The question (one line, so sub-calls can carry it) and the gold letter."""
    by_error = rng.random() < 0.5
    wrong = [f for f in functions if f.name not in (gold.name, gold.callee)]
    right = gold.name if by_error else gold.callee
    options = [right, *(f.name for f in rng.sample(wrong, 3))]
    rng.shuffle(options)
    letter = LETTERS[options.index(right)]
    listed = " ".join(f"({LETTERS[i]}) {name}" for i, name in enumerate(options))
    ask = (
        f"Which function in the repository raises `{gold.error}`?"
        if by_error
        else f"Which function does `{gold.name}` call to produce its return value?"
    )
    return f"{ask} Options: {listed}. Answer with the letter of the correct option.", letter


def generate(size_tokens: int, index: int, seed: int) -> Task:
    """The ``index``-th code QA task of ``size_tokens`` tokens."""
    rng = random.Random(f"codeqa:{seed}:{size_tokens}:{index}")
    repo, functions = _repository(rng, size_tokens * CHARS_PER_TOKEN)
    gold = rng.choice(functions)
    question, letter = _question(rng, gold, functions)
    solution = (
        PACK_CODE
        + ASK_FACT_CODE
        + "CHUNK = max(8_000, min(100_000, sum(map(len, context.values())) // 8))\n"
        + "files = [f'# file: {path}\\n{source}' for path, source in context.items()]\n"
        + "texts = ['\\n\\n'.join(group) for group in pack(files, CHUNK)]\n"
        + finish(f"ask_fact({question!r}, texts)")
    )
    return Task(
        id=task_id("codeqa", size_tokens, index, seed),
        suite="codeqa",
        size_tokens=size_tokens,
        question=question,
        context=repo,
        answer=letter,
        solution=solution,
        facts=(OracleFact(question, gold.source, letter),),
        meta={"files": str(len(repo)), "functions": str(len(functions))},
    )
