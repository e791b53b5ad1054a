"""The sub-call prompts the oracle's root code writes and the oracle policy answers.

Both sides use these templates: benchmark solutions format them inside the REPL, the
oracle parses them back. They are ordinary prompts a real sub-model can answer too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FACT_HEADER = "Answer the question from the text below only."
FACT_PROMPT = (
    FACT_HEADER + "\nQuestion: {question}\n"
    "Reply with the answer alone, or NONE if the text does not say.\n\nText:\n{text}"
)
NOT_FOUND = "NONE"

CLASSIFY_HEADER = "Classify each numbered question below into exactly one of these categories:"
CLASSIFY_PROMPT = (
    CLASSIFY_HEADER + " {categories}.\n"
    "Reply with one line per question, in the form `<number>: <category>`.\n\n{items}"
)

_ITEM = re.compile(r"^(\d+)\. (.*)$")


@dataclass(frozen=True, slots=True)
class FactRequest:
    """A parsed fact sub-call: the question and the text to answer it from."""

    question: str
    text: str


def parse_fact_request(prompt: str) -> FactRequest | None:
    """The question and text of a ``FACT_PROMPT``, or ``None`` for another prompt."""
    if not prompt.startswith(FACT_HEADER):
        return None
    head, sep, text = prompt.partition("\n\nText:\n")
    if not sep:
        return None
    for line in head.splitlines():
        if line.startswith("Question: "):
            return FactRequest(line.removeprefix("Question: ").strip(), text)
    return None


def parse_classify_request(prompt: str) -> list[tuple[str, str]] | None:
    """The ``(number, item)`` pairs of a ``CLASSIFY_PROMPT``, or ``None`` for another prompt."""
    if not prompt.startswith(CLASSIFY_HEADER):
        return None
    _, _, body = prompt.partition("\n\n")
    items: list[tuple[str, str]] = []
    for line in body.splitlines():
        match = _ITEM.match(line)
        if match is not None:
            items.append((match.group(1), match.group(2)))
    return items
