"""Scorers against hand-computed cases from the published definitions."""

from __future__ import annotations

import pytest

from rlm_engine.bench.scorers import (
    extract_choice,
    parse_pairs,
    score_choice,
    score_exact,
    score_needle,
    score_oolong,
    score_pairs,
)


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("Label: entity", "Label: entity", 1.0),
        ("**Label: [Entity]**", "Label: entity", 1.0),
        ("Label: location", "Label: entity", 0.0),
        ("User: 63685", "User: 63685", 1.0),
        ("User: 63686", "User: 63685", 0.0),  # users are exact, not numeric
        ("Label: 12", "Label: 13", 0.0),
        ("Answer: 12", "Answer: 12", 1.0),
        ("Answer: 10", "Answer: 12", 0.75**2),  # 0.5625
        ("Answer: 15", "Answer: 12", 0.75**3),  # 0.421875
        ("Answer: none", "Answer: 12", 0.0),
        ("Date: 2022-12-12", "Date: 12/12/2022", 1.0),
        ("Date: Dec 12, 2022", "Date: 12/12/2022", 1.0),
        ("Date: twelfth", "Date: 12/12/2022", 0.0),
        ("Date: 12/13/2022", "Date: 12/12/2022", 0.0),
        ("Answer: entity is more common than location", "Answer: x is more common than y", 1.0),
        ("Answer: entity is less common than location", "Answer: x is more common than y", 0.0),
        ("Answer: a is same frequency as b", "Answer: a is same frequency as b", 1.0),
    ],
)
def test_oolong(prediction: str, gold: str, expected: float) -> None:
    assert score_oolong(prediction, gold) == pytest.approx(expected)


def test_pairs_f1_by_hand() -> None:
    gold = "(1, 2)\n(1, 3)\n(2, 3)\n(3, 4)"
    # 3 predicted, 2 right (one written high-first, one duplicate): P = 2/3, R = 2/4.
    prediction = "(2, 1)\n(1, 2)\n(3, 1)\n(5, 6)"
    assert parse_pairs(prediction) == {(1, 2), (1, 3), (5, 6)}
    precision, recall = 2 / 3, 2 / 4
    assert score_pairs(prediction, gold) == pytest.approx(
        2 * precision * recall / (precision + recall)
    )
    assert score_pairs(gold, gold) == 1.0
    assert score_pairs("no pairs", gold) == 0.0
    assert score_pairs("", "") == 1.0


def test_needle_is_case_insensitive_substring() -> None:
    uuid = "3667b967-0b90-4bc5-b343-5ea01f749aaa"
    assert score_needle(f"The magic uuid is {uuid.upper()}.", uuid) == 1.0
    assert score_needle("1234567", "7654321") == 0.0


@pytest.mark.parametrize(
    ("prediction", "letter"),
    [
        ("B", "B"),
        ("(C)", "C"),
        ("The answer is (D).", "D"),
        ("Answer: a", "A"),
        ("I am not sure", None),
    ],
)
def test_choice_extraction(prediction: str, letter: str | None) -> None:
    assert extract_choice(prediction) == letter


def test_choice_and_exact_accuracy() -> None:
    assert score_choice("The answer is (B)", "B") == 1.0
    assert score_choice("A", "B") == 0.0
    assert score_exact("The Varga Lantern Bridge.", "Varga Lantern Bridge") == 1.0
    assert score_exact("It is the Varga Lantern Bridge", "Varga Lantern Bridge") == 1.0
    assert score_exact("Varga Bridge", "Varga Lantern Bridge") == 0.0
