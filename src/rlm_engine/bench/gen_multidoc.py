"""A BrowseComp-like multi-document set: three-hop questions over up to 1,000 documents.

A generated world of people, the companies they founded, the cities those companies sit in
and each city's oldest bridge. A question chains three facts held by three different
documents; hard negatives share first names, company name stems and similar wording.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from rlm_engine.bench.sizes import CHARS_PER_TOKEN
from rlm_engine.bench.solution_code import ASK_FACT_CODE, PACK_CODE, finish
from rlm_engine.bench.task import Task, task_id
from rlm_engine.bench.words import (
    ADJECTIVES,
    FIRST_NAMES,
    LAST_NAMES,
    NOUNS,
    essay_sentence,
    pick,
    place_name,
)
from rlm_engine.sim.oracle_registry import OracleFact

MAX_DOCUMENTS = 1000
_SUFFIXES = ("Analytics", "Logistics", "Foundry", "Labs", "Works", "Holdings", "Systems")


@dataclass(frozen=True, slots=True)
class _Company:
    name: str
    founder: str
    city: str
    year: int


def _unique(rng: random.Random, make: Callable[[random.Random], str], count: int) -> list[str]:
    seen: dict[str, None] = {}  # a dict keeps the drawing order, so output is deterministic
    while len(seen) < count:
        seen[make(rng)] = None
    return list(seen)


def _person(rng: random.Random) -> str:
    return f"{pick(rng, FIRST_NAMES)} {pick(rng, LAST_NAMES)}"


def _company_name(rng: random.Random) -> str:
    return f"{pick(rng, ADJECTIVES).title()} {pick(rng, NOUNS).title()} {pick(rng, _SUFFIXES)}"


def _bridge(rng: random.Random) -> str:
    return f"{pick(rng, LAST_NAMES)} {pick(rng, NOUNS).title()} Bridge"


def _pad(rng: random.Random, text: str, size: int) -> str:
    while len(text) < size:
        text += " " + essay_sentence(rng)
    return text


def founding_sentence(company: _Company) -> str:
    return f"In {company.year}, {company.founder} founded {company.name}."


def _world(rng: random.Random, documents: int) -> tuple[list[_Company], dict[str, str]]:
    cities = _unique(rng, place_name, max(4, documents // 6))
    people_count = max(3, (documents - len(cities)) // 2)
    people = _unique(rng, _person, people_count)
    names = _unique(rng, _company_name, people_count)
    bridges = _unique(rng, _bridge, len(cities))
    companies = [
        _Company(name, founder, rng.choice(cities), rng.randint(1950, 2020))
        for name, founder in zip(names, people, strict=True)
    ]
    return companies, dict(zip(cities, bridges, strict=True))


def _documents(
    rng: random.Random, companies: list[_Company], bridges: dict[str, str], doc_chars: int
) -> list[str]:
    docs: list[str] = []
    for company in companies:
        docs.append(
            _pad(
                rng,
                f"Title: {company.founder}\n{company.founder} grew up far from the coast and "
                f"studied {pick(rng, NOUNS)} design. {founding_sentence(company)}",
                doc_chars,
            )
        )
        docs.append(
            _pad(
                rng,
                f"Title: {company.name}\n{company.name} builds {pick(rng, NOUNS)} equipment. "
                f"{company.name} is headquartered in {company.city}.",
                doc_chars,
            )
        )
    for city, bridge in bridges.items():
        docs.append(
            _pad(
                rng,
                f"Title: {city}\n{city} is a river town. The oldest bridge in {city} is the "
                f"{bridge}.",
                doc_chars,
            )
        )
    rng.shuffle(docs)
    return docs


def generate(size_tokens: int, index: int, seed: int) -> Task:
    """The ``index``-th multi-document task of ``size_tokens`` tokens."""
    rng = random.Random(f"multidoc:{seed}:{size_tokens}:{index}")
    target = size_tokens * CHARS_PER_TOKEN
    documents = min(MAX_DOCUMENTS, max(20, target // 400))
    companies, bridges = _world(rng, documents)
    gold = rng.choice(companies)
    bridge = bridges[gold.city]
    docs = _documents(rng, companies, bridges, target // documents)
    hops = (
        (f"Which company did {gold.founder} found?", founding_sentence(gold), gold.name),
        (
            f"In which city is {gold.name} headquartered?",
            f"{gold.name} is headquartered in {gold.city}.",
            gold.city,
        ),
        (
            f"What is the oldest bridge in {gold.city}?",
            f"The oldest bridge in {gold.city} is the {bridge}.",
            bridge,
        ),
    )
    solution = (
        PACK_CODE
        + ASK_FACT_CODE
        + "CHUNK = max(8_000, min(100_000, sum(map(len, context)) // 8))\n"
        + "texts = ['\\n\\n'.join(group) for group in pack(context, CHUNK)]\n"
        + f"company = ask_fact({hops[0][0]!r}, texts)\n"
        + "city = ask_fact(f'In which city is {company} headquartered?', texts)\n"
        + finish("ask_fact(f'What is the oldest bridge in {city}?', texts)")
    )
    return Task(
        id=task_id("multidoc", size_tokens, index, seed),
        suite="multidoc",
        size_tokens=size_tokens,
        question=(
            "What is the oldest bridge in the city where the company founded by "
            f"{gold.founder} has its headquarters? Answer with the bridge's name."
        ),
        context=docs,
        answer=bridge,
        solution=solution,
        facts=tuple(OracleFact(*hop) for hop in hops),
        meta={"documents": str(len(docs))},
    )
