"""Levels 1-3: a text context, from one cell of arithmetic to a fan-out of sub-calls.

Each context is one small text file, so in the REPL ``context`` is a ``str`` and the
oracle finds the task by that text's fingerprint, as it does for the benchmarks.
"""

from __future__ import annotations

import random
from pathlib import Path

from rlm_engine.bench.solution_code import finish
from rlm_engine.bench.words import ADJECTIVES, NOUNS, essay_paragraph, pick, place_name
from rlm_engine.jobs.levels.base import OracleKnowledge, Prepared
from rlm_engine.jobs.levels.checks import check_id, check_number
from rlm_engine.sim.oracle_protocol import FACT_PROMPT, NOT_FOUND
from rlm_engine.sim.oracle_registry import OracleFact, context_fingerprint


def write_text(directory: Path, name: str, text: str) -> Path:
    """``text`` as the UTF-8 file ``directory/name`` (the directory made if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def arithmetic(directory: Path, seed: int) -> Prepared:
    """Level 1: the sum of a short list of integers, one cell of code."""
    rng = random.Random(f"level1:{seed}")
    values = [rng.randrange(-500, 5000) for _ in range(rng.randrange(12, 20))]
    text = "\n".join(str(v) for v in values) + "\n"
    path = write_text(directory / "level1", "numbers.txt", text)
    question = "The context is a list of integers, one per line. What is their sum?"
    expected = sum(values)
    solution = (
        "values = [int(line) for line in context.split()]\n"
        "print(len(values), 'values')\n" + finish("sum(values)")
    )
    return Prepared(
        question=question,
        contexts=(path,),
        expected=str(expected),
        check=lambda answer, _fields: check_number(answer, expected),
        oracle=(
            OracleKnowledge(
                f"level1-s{seed}", context_fingerprint(text), question, solution, str(expected)
            ),
        ),
    )


def _token(rng: random.Random) -> str:
    return f"tok-{rng.getrandbits(32):08x}"


def search(directory: Path, seed: int) -> Prepared:
    """Level 2: find the one log line that answers the question among thousands."""
    rng = random.Random(f"level2:{seed}")
    users = sorted({f"{pick(rng, ADJECTIVES)}-{pick(rng, NOUNS)}" for _ in range(60)})
    target = users[rng.randrange(len(users))]
    actions = ("login", "logout", "read", "write", "list", "sync")
    lines: list[str] = []
    answer = ""
    issued: set[str] = set()
    for i in range(4000):
        minute, second = divmod(i, 60)
        stamp = f"2026-03-04T{10 + minute // 60:02d}:{minute % 60:02d}:{second:02d}Z"
        user = users[rng.randrange(len(users))]
        if i % 97 == 13 and user != target:
            token = _token(rng)
            issued.add(token)
            lines.append(f"{stamp} auth WARN user={user} issued access token {token}")
        else:
            lines.append(f"{stamp} app INFO user={user} action={pick(rng, actions)}")
    answer = _token(rng)
    while answer in issued:
        answer = _token(rng)
    at = rng.randrange(len(lines) // 4, len(lines))
    lines[at] = f"{lines[at][:20]} auth WARN user={target} issued access token {answer}"
    text = "\n".join(lines) + "\n"
    path = write_text(directory / "level2", "auth.log", text)
    question = (
        f"The context is a server log. Which access token was issued to user {target}? "
        "Answer with the token id."
    )
    solution = (
        "import re\n"
        f"hits = re.findall(r'user={target} issued access token (tok-[0-9a-f]{{8}})', context)\n"
        "print(hits)\n" + finish("hits[0] if hits else 'not found'")
    )
    return Prepared(
        question=question,
        contexts=(path,),
        expected=answer,
        check=lambda given, _fields: check_id(given, answer, r"tok-[0-9a-f]{8}"),
        oracle=(
            OracleKnowledge(
                f"level2-s{seed}", context_fingerprint(text), question, solution, answer
            ),
        ),
    )


FANOUT_QUESTION = "How many damaged crates does this report count? Reply with the number only."
_CRATES = (
    "At {place} the crew counted {n} damaged crates before noon.",
    "The inspection at {place} found {n} damaged crates in the east shed.",
    "Damaged crates recorded at {place} this week: {n}.",
)


def fanout(directory: Path, seed: int) -> Prepared:
    """Level 3: one fact per report, asked of every report with ``llm_query_batched``."""
    rng = random.Random(f"level3:{seed}")
    places = sorted({place_name(rng) for _ in range(12)})[:8]
    sections: list[str] = []
    facts: list[OracleFact] = []
    total = 0
    for index, place in enumerate(places):
        count = rng.randrange(3, 90)
        total += count
        sentence = _CRATES[index % len(_CRATES)].format(place=place, n=count)
        paragraphs = [essay_paragraph(rng, 6) for _ in range(12)]
        paragraphs.insert(rng.randrange(len(paragraphs) + 1), sentence)
        sections.append(f"=== report {index + 1}: {place} ===\n" + "\n".join(paragraphs))
        facts.append(OracleFact(FANOUT_QUESTION, sentence, str(count)))
    text = "\n\n".join(sections) + "\n"
    path = write_text(directory / "level3", "reports.txt", text)
    question = (
        "The context holds several field reports, each headed '=== report N: PLACE ==='. "
        "Across all reports, how many damaged crates were counted in total?"
    )
    solution = (
        "import re\n"
        + "reports = [r for r in re.split(r'(?m)^=== report ', context) if r.strip()]\n"
        + f"FACT_PROMPT = {FACT_PROMPT!r}\n"
        + "replies = llm_query_batched(\n"
        + f"    [FACT_PROMPT.format(question={FANOUT_QUESTION!r}, text=r) for r in reports])\n"
        + "counts = []\n"
        + "for reply in replies:\n"
        + "    found = re.search(r'-?\\d+', reply)\n"
        + f"    if found and reply.strip().upper() != {NOT_FOUND!r}:\n"
        + "        counts.append(int(found.group()))\n"
        + "print(len(reports), 'reports', counts)\n"
        + finish("sum(counts)")
    )
    return Prepared(
        question=question,
        contexts=(path,),
        expected=str(total),
        check=lambda answer, _fields: check_number(answer, total),
        oracle=(
            OracleKnowledge(
                f"level3-s{seed}",
                context_fingerprint(text),
                question,
                solution,
                str(total),
                facts=tuple(facts),
            ),
        ),
    )
