"""Automatic checks of a level's answer: exact for numbers and ids, normalised for text,
field by field (against the JSON schema first) for typed answers.

A real model phrases answers freely ("The total is 1,234."), so a check looks for the
value the answer commits to rather than demanding the bare value: the last number it
gives, the only id of the expected form, the only one of the possible names.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,_]*(?:\.\d+)?(?![\w])")


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether an answer passed, and why not when it did not."""

    passed: bool
    reason: str = ""


def normalise(text: str) -> str:
    """Case-folded words separated by single spaces, without punctuation or accents."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+", " ", plain.casefold()).split())


def numbers_in(text: str) -> list[float]:
    """Every number written in ``text`` ("1,234", "56.0", "-7")."""
    found: list[float] = []
    for token in _NUMBER.findall(text):
        try:
            found.append(float(token.replace(",", "").replace("_", "")))
        except ValueError:
            continue
    return found


def check_number(answer: str, expected: int) -> Verdict:
    """Passes when the last number the answer gives is ``expected``: a sentence may count
    things on its way ("the sum of the 15 values is 1234"), but "1234 or 1235" ends on a
    different number and fails."""
    found = numbers_in(answer)
    if not found:
        return Verdict(False, "the answer holds no number")
    if found[-1] == float(expected):
        return Verdict(True)
    return Verdict(False, f"expected {expected}, the answer ends on {found[-1]:g}")


def check_id(answer: str, expected: str, pattern: str) -> Verdict:
    """Passes when ``expected`` is the only token of the id ``pattern`` in the answer."""
    found = set(re.findall(rf"(?<![\w-])(?:{pattern})(?![\w-])", answer))
    if found == {expected}:
        return Verdict(True)
    if not found:
        return Verdict(False, "the answer holds no id of the expected form")
    return Verdict(False, f"expected {expected}, the answer gives {', '.join(sorted(found))}")


def check_choice(answer: str, expected: str, choices: Sequence[str]) -> Verdict:
    """Passes when, of the possible ``choices``, the answer names ``expected`` only
    (compared as normalised whole words)."""
    words = f" {normalise(answer)} "
    named = [c for c in choices if f" {normalise(c)} " in words]
    if named == [expected]:
        return Verdict(True)
    if not named:
        return Verdict(False, f"the answer names none of: {', '.join(choices)}")
    return Verdict(False, f"expected {expected}, the answer names {', '.join(named)}")


def check_fields(
    fields: Mapping[str, Any] | None, schema: Mapping[str, Any], expected: Mapping[str, Any]
) -> Verdict:
    """Passes when the SUBMIT fields fit ``schema`` and each expected field is equal
    (strings compared normalised, numbers exactly)."""
    if fields is None:
        return Verdict(False, "the run did not SUBMIT typed fields")
    import jsonschema

    try:
        jsonschema.validate(dict(fields), dict(schema))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the answer"
        return Verdict(False, f"does not fit the schema at {where}: {exc.message}")
    wrong: list[str] = []
    for name, want in expected.items():
        got = fields.get(name)
        same = (
            normalise(got) == normalise(want)
            if isinstance(want, str) and isinstance(got, str)
            else got == want
        )
        if not same:
            wrong.append(f"{name}={got!r} (expected {want!r})")
    if wrong:
        return Verdict(False, "wrong field(s): " + "; ".join(wrong))
    return Verdict(True)
