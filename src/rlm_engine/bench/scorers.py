"""Scorers as published for each task family; each returns a score in [0, 1]."""

from __future__ import annotations

import datetime as dt
import re
import string

_COMPARISONS = ("more common", "less common", "same frequency")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_PAIR = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)")
_DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%b %d, %Y", "%B %d, %Y", "%d %B %Y", "%m/%d/%y")


def _oolong_clean(text: str) -> str:
    tail = text.rsplit(":", 1)[-1]
    return tail.translate(str.maketrans("", "", "*[]")).strip().strip(".").strip().lower()


def _parse_date(text: str) -> dt.date | None:
    for form in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text.strip(), form).date()
        except ValueError:
            continue
    return None


def score_oolong(prediction: str, gold: str) -> float:
    """OOLONG: compare the text after the last ':' (``*``, ``[``, ``]`` stripped).

    The gold answer's prefix gives its type. Labels and users: exact match. Comparisons
    ('more common', 'less common', 'same frequency'): 1 when the phrase matches. Numbers:
    ``0.75 ** |gold - prediction|``. Dates: 1 when equal after parsing. Otherwise 0.
    """
    pred, want = _oolong_clean(prediction), _oolong_clean(gold)
    kind = gold.rsplit(":", 1)[0].strip().lower() if ":" in gold else ""
    if pred == want:
        return 1.0
    if kind in ("label", "user"):
        return 0.0
    if kind == "date":
        gold_date = _parse_date(want)
        return 1.0 if gold_date is not None and _parse_date(pred) == gold_date else 0.0
    for phrase in _COMPARISONS:
        if phrase in want:
            return 1.0 if phrase in pred else 0.0
    if _NUMBER.fullmatch(want):
        found = _NUMBER.search(pred)
        if found is None:
            return 0.0
        return 0.75 ** abs(float(want) - float(found.group()))
    return 0.0


def parse_pairs(text: str) -> set[tuple[int, int]]:
    """Every ``(a, b)`` in the text, normalised to ``(min, max)``; self-pairs dropped."""
    pairs: set[tuple[int, int]] = set()
    for first, second in _PAIR.findall(text):
        a, b = int(first), int(second)
        if a != b:
            pairs.add((min(a, b), max(a, b)))
    return pairs


def score_pairs(prediction: str, gold: str) -> float:
    """OOLONG-Pairs: F1 of the predicted pair set against the gold set."""
    pred, want = parse_pairs(prediction), parse_pairs(gold)
    if not pred and not want:
        return 1.0
    hits = len(pred & want)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(pred), hits / len(want)
    return 2 * precision * recall / (precision + recall)


def score_needle(prediction: str, gold: str) -> float:
    """S-NIAH: 1 when the needle's value occurs in the answer (case-insensitive)."""
    return 1.0 if gold.strip().lower() in prediction.lower() else 0.0


_CHOICE_PATTERNS = (
    re.compile(r"answer is\s*\(?([A-D])\)?", re.IGNORECASE),
    re.compile(r"answer\s*:\s*\(?([A-D])\)?", re.IGNORECASE),
    re.compile(r"^\(?([A-D])\)?[.)]?$"),
    re.compile(r"\(([A-D])\)"),
)


def extract_choice(prediction: str) -> str | None:
    """The option letter an answer picks: 'The answer is (B)', 'Answer: B', 'B', '(B)'."""
    text = prediction.strip()
    for pattern in _CHOICE_PATTERNS:
        matches = pattern.findall(text)
        if matches:
            return str(matches[-1]).upper()
    return None


def score_choice(prediction: str, gold: str) -> float:
    """CodeQA: accuracy of the extracted option letter."""
    return 1.0 if extract_choice(prediction) == gold.strip().upper() else 0.0


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD-style)."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(word for word in text.split() if word not in ("a", "an", "the"))


def score_exact(prediction: str, gold: str) -> float:
    """Multi-document QA: accuracy; the normalised gold answer must equal the normalised
    prediction or appear in it as whole words."""
    pred, want = normalize_answer(prediction), normalize_answer(gold)
    if not want:
        return 0.0
    return 1.0 if pred == want or f" {want} " in f" {pred} " else 0.0
