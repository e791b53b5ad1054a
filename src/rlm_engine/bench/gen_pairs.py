"""OOLONG-Pairs: the 20 pair queries over OOLONG contexts.

Queries 1-10 are symmetric (both users satisfy the condition; 6-10 add a date condition on
one label), 11-20 asymmetric (one user satisfies P, the other Q, with exactly one, exactly
two or at least two instances). Answers list ``(low, high)`` user pairs, one per line, and
can be thousands of lines, so the solution builds them in a variable for ``FINAL_VAR``.
"""

from __future__ import annotations

import random
from typing import Any

from rlm_engine.bench import oolong_queries as q
from rlm_engine.bench.gen_oolong import records_code
from rlm_engine.bench.oolong_data import LABELS, OolongData, generate_oolong
from rlm_engine.bench.solution_code import finish, function_source
from rlm_engine.bench.task import Task, task_id

NUM, ENT, LOC, DESC, ABBR, HUM = LABELS
_COUNT_WORDS = {1: "exactly one instance", 2: "exactly two instances"}

# (first condition, second condition or None for symmetric); "{date}" is filled per context.
QUERIES: tuple[tuple[list[Any], list[Any] | None], ...] = (
    (["any", [NUM, LOC]], None),
    (["any", [ENT, HUM]], None),
    (["any", [DESC, ABBR]], None),
    (["any", [HUM, LOC]], None),
    (["any", [ENT, NUM]], None),
    (["any", [NUM, LOC], NUM, "before", "{date}"], None),
    (["any", [ENT, HUM], HUM, "after", "{date}"], None),
    (["any", [DESC, ABBR], ABBR, "before", "{date}"], None),
    (["any", [HUM, LOC], LOC, "after", "{date}"], None),
    (["any", [ENT, DESC], DESC, "before", "{date}"], None),
    (["any", [ENT]], ["count_eq", ABBR, 1]),
    (["any", [NUM]], ["count_eq", HUM, 1]),
    (["any", [LOC]], ["count_eq", DESC, 2]),
    (["any", [HUM]], ["count_eq", ENT, 2]),
    (["any", [DESC]], ["count_ge", NUM, 2]),
    (["any", [ABBR]], ["count_ge", LOC, 2]),
    (["count_eq", ENT, 1], ["count_eq", LOC, 1]),
    (["count_eq", NUM, 2], ["count_ge", HUM, 2]),
    (["count_ge", DESC, 2], ["count_eq", ABBR, 1]),
    (["count_ge", ENT, 2], ["count_ge", NUM, 2]),
)


def _fill(condition: list[Any], date: str) -> list[Any]:
    return [date if part == "{date}" else part for part in condition]


def describe(condition: list[Any], stamp: str) -> str:
    """The condition in words, as the question states it."""
    kind = condition[0]
    if kind == "count_eq":
        return f"has {_COUNT_WORDS[condition[2]]} with the label '{condition[1]}'"
    if kind == "count_ge":
        return f"has at least {condition[2]} instances with the label '{condition[1]}'"
    labels = " or ".join(f"'{label}'" for label in condition[1])
    text = f"has at least one instance with the label {labels}"
    if len(condition) > 2:
        text += f", and all of that user's instances with the label '{condition[2]}' are dated "
        text += f"{condition[3]} {stamp}"
    return text


def _question(first: list[Any], second: list[Any] | None, stamp: str) -> str:
    if second is None:
        condition = f"both users each {describe(first, stamp)}"
    else:
        condition = (
            f"one user {describe(first, stamp)} and the other user {describe(second, stamp)}"
        )
    return (
        "Each line of the data has a user ID and a question from one of six categories "
        "(the categories are not given). List all pairs of user IDs such that "
        f"{condition}. Write each pair as (id1, id2) with the lower ID first, one pair per "
        "line, with no duplicate pairs."
    )


def _median_date(data: OolongData) -> tuple[str, str]:
    date = data.lines[len(data.lines) // 2].date
    return date.isoformat(), f"{date:%b} {date.day}, {date.year}"


def generate(size_tokens: int, index: int, seed: int) -> Task:
    """The ``index``-th pairs task (query ``index % 20 + 1``) of ``size_tokens`` tokens."""
    rng = random.Random(f"oolong-pairs:{seed}:{size_tokens}:{index}")
    data = generate_oolong(rng, size_tokens)
    number = index % len(QUERIES)
    iso, stamp = _median_date(data)
    first_raw, second_raw = QUERIES[number]
    first = _fill(first_raw, iso)
    second = _fill(second_raw, iso) if second_raw is not None else None
    kwargs = {"first": first, "second": second if second is not None else first}
    gold = q.user_pairs(data.records, **kwargs)
    call = f"user_pairs(records, **{kwargs!r})"
    return Task(
        id=task_id("oolong-pairs", size_tokens, index, seed),
        suite="oolong-pairs",
        size_tokens=size_tokens,
        question=_question(first, second, stamp),
        context=data.context,
        answer=gold,
        solution=records_code() + function_source(q.user_pairs) + finish(call),
        labels=data.labels,
        meta={"query": str(number + 1), "pairs": str(gold.count("\n") + 1 if gold else 0)},
    )
