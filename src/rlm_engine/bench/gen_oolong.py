"""OOLONG-synth tasks: counting, user and temporal questions over labelled lines."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlm_engine.bench import oolong_queries as q
from rlm_engine.bench.oolong_data import LABELS, OolongData, generate_oolong
from rlm_engine.bench.solution_code import CLASSIFY_CODE, PACK_CODE, finish, function_source
from rlm_engine.bench.task import Task, task_id

_ANSWER_N = " Give your final answer in the form 'Answer: <number>'."
_ANSWER_USER = " Give your final answer in the form 'User: <user id>'."


@dataclass(frozen=True, slots=True)
class Query:
    """A question and the function (with arguments) that answers it from records."""

    text: str
    fn: Callable[..., str | None]
    kwargs: dict[str, Any]


def _counting(rng: random.Random, data: OolongData) -> Query:
    kind = rng.randrange(4)
    label, other = rng.sample(LABELS, 2)
    if kind < 2:
        word = ("most", "least")[kind]
        return Query(
            f"Which of the six categories is the {word} common among the questions? "
            "Give your final answer in the form 'Label: <category>'.",
            q.label_extreme,
            {"labels": list(LABELS), "most": kind == 0},
        )
    if kind == 2:
        return Query(
            f"How many questions belong to the category '{label}'?" + _ANSWER_N,
            q.label_count,
            {"label": label},
        )
    return Query(
        f"Is the category '{label}' more common, less common, or the same frequency as "
        f"'{other}'? Give your final answer in the form 'Answer: {label} is [X] {other}', "
        "where [X] is 'more common than', 'less common than' or 'same frequency as'.",
        q.compare_labels,
        {"first": label, "second": other},
    )


def _user(rng: random.Random, data: OolongData) -> Query:
    kind = rng.randrange(4)
    if kind < 2:
        word = ("", "second ")[kind]
        return Query(
            f"Which user asked the {word}most questions?" + _ANSWER_USER,
            q.top_user,
            {"rank": kind + 1},
        )
    if kind == 2:
        label = rng.choice(LABELS)
        return Query(
            f"Which user asked the most questions in the category '{label}'?" + _ANSWER_USER,
            q.top_user,
            {"rank": 1, "label": label},
        )
    users = sorted({line.user for line in data.lines})
    subset = sorted(rng.sample(users, min(len(users), rng.randint(10, 20))))
    return Query(
        f"Among the users {', '.join(map(str, subset))}, which one asked the most questions?"
        + _ANSWER_USER,
        q.top_user,
        {"rank": 1, "users": subset},
    )


def _temporal(rng: random.Random, data: OolongData) -> Query:
    kind = rng.randrange(3)
    label = rng.choice(LABELS)
    date = rng.choice(data.lines).date
    if kind == 0:
        return Query(
            "On which date were the most questions asked? "
            "Give your final answer in the form 'Date: MM/DD/YYYY'.",
            q.top_date,
            {},
        )
    if kind == 1:
        stamp = f"{date:%b} {date.day}, {date.year}"
        return Query(
            f"How many questions in the category '{label}' were asked after {stamp}?" + _ANSWER_N,
            q.label_count_after,
            {"label": label, "date": date.isoformat()},
        )
    return Query(
        f"How many questions in the category '{label}' were asked in "
        f"{date:%B} {date.year}?" + _ANSWER_N,
        q.label_count_in_month,
        {"label": label, "month": f"{date:%Y-%m}"},
    )


_FAMILIES = (_counting, _user, _temporal)

RECORDS_CODE = """\
import re
from datetime import datetime
from typing import Any
Record = tuple[str, int, str]
LINE = re.compile(r"^Date: (.+?) \\|\\| User: (\\d+) \\|\\| Instance: (.*)$")
rows = [m.groups() for m in map(LINE.match, context.splitlines()) if m]
print(len(rows), "question lines")
CHUNK = max(8_000, min(100_000, len(context) // 8))
CATEGORIES = {categories!r}
labels = classify([row[2] for row in rows], CATEGORIES, CHUNK)
records = [
    (datetime.strptime(d, "%b %d, %Y").date().isoformat(), int(u), label)
    for (d, u, _), label in zip(rows, labels)
]
"""


def records_code() -> str:
    """REPL code that parses the lines and labels them through sub-calls into ``records``."""
    return PACK_CODE + CLASSIFY_CODE + RECORDS_CODE.format(categories=list(LABELS))


def generate(size_tokens: int, index: int, seed: int) -> Task:
    """The ``index``-th OOLONG task of ``size_tokens`` tokens."""
    rng = random.Random(f"oolong:{seed}:{size_tokens}:{index}")
    data = generate_oolong(rng, size_tokens)
    records = data.records
    family = _FAMILIES[index % len(_FAMILIES)]
    for _ in range(100):
        query = family(rng, data)
        gold = query.fn(records, **query.kwargs)
        if gold is not None:
            break
    else:  # pragma: no cover - every family has tie-free questions in practice
        raise RuntimeError(f"no unambiguous OOLONG question for task {index}")
    call = f"{query.fn.__name__}(records, **{query.kwargs!r})"
    return Task(
        id=task_id("oolong", size_tokens, index, seed),
        suite="oolong",
        size_tokens=size_tokens,
        question=query.text,
        context=data.context,
        answer=gold,
        solution=records_code() + function_source(query.fn) + finish(call),
        labels=data.labels,
        meta={"family": family.__name__.strip("_"), "template": query.fn.__name__},
    )
