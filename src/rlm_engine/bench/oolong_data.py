"""OOLONG-synth contexts: labelled general-knowledge question lines with users and dates.

Each line reads ``Date: Dec 12, 2022 || User: 63685 || Instance: <question>``; the
question's category (one of six TREC coarse labels) is not in the context. The questions
are generated from templates, one family of templates per category, so every question's
text determines its label.
"""

from __future__ import annotations

import datetime as dt
import random
import string
from dataclasses import dataclass

from rlm_engine.bench.sizes import CHARS_PER_TOKEN
from rlm_engine.bench.words import ADJECTIVES, NOUNS, TOPICS, pick, place_name

LABELS = (
    "numeric value",
    "entity",
    "location",
    "description and abstract concept",
    "abbreviation",
    "human being",
)

HEADER = (
    "The following lines contain thousands of general-knowledge questions, one per line. "
    "Each line has a User ID and a date. Each question belongs to one of six categories: "
    "'numeric value', 'entity', 'location', 'description and abstract concept', "
    "'abbreviation', 'human being'. The categories are not given; you must infer them.\n"
)

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "numeric value": (
        "How many {n}s can a {a} {m} carry across {p}?",
        "In what year was the {p} {n} first opened?",
        "How far is it from {p} to {q} by the old {m} road?",
    ),
    "entity": (
        "What kind of {n} is kept in the {a} halls of {p}?",
        "Which instrument did the {a} bands of {p} prefer?",
        "What breed of {m} pulls the carts in {p}?",
    ),
    "location": (
        "Where is the {a} {n} of {p} kept?",
        "In which valley does the town of {p} lie?",
        "Where did the {m} makers of {q} move their workshops?",
    ),
    "description and abstract concept": (
        "What does it mean to call a {n} {a}?",
        "Why do people in {p} value {t}?",
        "What is the idea behind the {a} {m} custom of {p}?",
    ),
    "abbreviation": (
        "What does the abbreviation {x} stand for?",
        "What is the full form of {x} in {t} reports?",
        "What does {x} mean on the signs of {p}?",
    ),
    "human being": (
        "Who founded the first {n} workshop in {p}?",
        "Who was the {a} keeper of the {t} of {p}?",
        "Who carved the {m} statue that stands in {q}?",
    ),
}


@dataclass(frozen=True, slots=True)
class OolongLine:
    """One question line: its date, user, question text and hidden label."""

    date: dt.date
    user: int
    question: str
    label: str

    def render(self) -> str:
        stamp = f"{self.date:%b} {self.date.day}, {self.date.year}"
        return f"Date: {stamp} || User: {self.user} || Instance: {self.question}"

    @property
    def record(self) -> tuple[str, int, str]:
        """``(ISO date, user, label)``: the record the query functions work on."""
        return (self.date.isoformat(), self.user, self.label)


@dataclass(frozen=True, slots=True)
class OolongData:
    """A generated OOLONG context and the ground truth of every line."""

    lines: tuple[OolongLine, ...]

    @property
    def context(self) -> str:
        return HEADER + "\n".join(line.render() for line in self.lines) + "\n"

    @property
    def records(self) -> list[tuple[str, int, str]]:
        return [line.record for line in self.lines]

    @property
    def labels(self) -> dict[str, str]:
        return {line.question: line.label for line in self.lines}


def _question(rng: random.Random, label: str) -> str:
    abbreviation = "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(2, 4)))
    return pick(rng, _TEMPLATES[label]).format(
        n=pick(rng, NOUNS),
        m=pick(rng, NOUNS),
        a=pick(rng, ADJECTIVES),
        p=place_name(rng),
        q=place_name(rng),
        t=pick(rng, TOPICS),
        x=abbreviation,
    )


def _zipf_weights(rng: random.Random, count: int, exponent: float) -> list[float]:
    weights = [1 / (rank + 1) ** exponent for rank in range(count)]
    rng.shuffle(weights)
    return weights


def generate_oolong(rng: random.Random, size_tokens: int) -> OolongData:
    """Question lines filling about ``size_tokens`` tokens of context."""
    target = size_tokens * CHARS_PER_TOKEN - len(HEADER)
    estimated_lines = max(40, target // 95)
    users = rng.sample(range(10_000, 100_000), min(500, max(10, estimated_lines // 12)))
    user_weights = _zipf_weights(rng, len(users), 0.8)
    first_day = dt.date(2021, 1, 1)
    day_count = min(700, max(30, estimated_lines // 4))
    days = sorted(first_day + dt.timedelta(days=d) for d in rng.sample(range(1095), day_count))
    day_weights = _zipf_weights(rng, len(days), 0.6)
    label_weights = [rng.uniform(0.5, 3.0) for _ in LABELS]
    lines: list[OolongLine] = []
    size = 0
    while size < target:
        label = rng.choices(LABELS, label_weights)[0]
        line = OolongLine(
            date=rng.choices(days, day_weights)[0],
            user=rng.choices(users, user_weights)[0],
            question=_question(rng, label),
            label=label,
        )
        lines.append(line)
        size += len(line.render()) + 1
    lines.sort(key=lambda line: line.date)
    return OolongData(tuple(lines))
