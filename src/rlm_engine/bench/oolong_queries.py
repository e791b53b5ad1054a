"""OOLONG and OOLONG-Pairs answers computed from ``(ISO date, user, label)`` records.

Each function is self-contained (imports inside, no module globals) because the oracle
ships its source into the REPL: the generator computes the gold answer with it from the
true labels, the oracle's root code computes the same function from the labels its
sub-calls returned. A function returns ``None`` when the question would be ambiguous
(a tie), and the generator then picks another question.
"""

from __future__ import annotations

from typing import Any

Record = tuple[str, int, str]


def label_extreme(records: list[Record], labels: list[str], most: bool) -> str | None:
    """The most (or least) common label; ``None`` unless it leads by over 2% of lines."""
    counts = {label: 0 for label in labels}
    for _, _, label in records:
        counts[label] = counts.get(label, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=most)
    if len(ranked) > 1 and abs(ranked[0][1] - ranked[1][1]) <= 0.02 * len(records):
        return None
    return f"Label: {ranked[0][0]}"


def label_count(records: list[Record], label: str) -> str | None:
    """How many lines have ``label``."""
    return f"Answer: {sum(1 for record in records if record[2] == label)}"


def compare_labels(records: list[Record], first: str, second: str) -> str | None:
    """Whether ``first`` is more common, less common or as common as ``second``."""
    a = sum(1 for record in records if record[2] == first)
    b = sum(1 for record in records if record[2] == second)
    relation = "more common than" if a > b else "less common than" if a < b else "same frequency as"
    return f"Answer: {first} is {relation} {second}"


def top_user(
    records: list[Record],
    rank: int,
    label: str | None = None,
    users: list[int] | None = None,
) -> str | None:
    """The user at ``rank`` (1 = most frequent), optionally for one label or among some
    users; ``None`` on a tie at or above that rank."""
    counts: dict[int, int] = {}
    for _, user, record_label in records:
        if (label is None or record_label == label) and (users is None or user in users):
            counts[user] = counts.get(user, 0) + 1
    ranked = sorted(counts.values(), reverse=True)
    if len(ranked) < rank or len(set(ranked[: rank + 1])) < min(rank + 1, len(ranked)):
        return None
    wanted = ranked[rank - 1]
    return f"User: {next(u for u, c in counts.items() if c == wanted)}"


def top_date(records: list[Record]) -> str | None:
    """The most frequent date as ``MM/DD/YYYY``; ``None`` on a tie."""
    counts: dict[str, int] = {}
    for date, _, _ in records:
        counts[date] = counts.get(date, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    year, month, day = ranked[0][0].split("-")
    return f"Date: {month}/{day}/{year}"


def label_count_after(records: list[Record], label: str, date: str) -> str | None:
    """How many lines with ``label`` are dated after the ISO ``date``."""
    return f"Answer: {sum(1 for d, _, lab in records if lab == label and d > date)}"


def label_count_in_month(records: list[Record], label: str, month: str) -> str | None:
    """How many lines with ``label`` are dated in ``month`` (``YYYY-MM``)."""
    return f"Answer: {sum(1 for d, _, lab in records if lab == label and d[:7] == month)}"


def user_pairs(records: list[Record], first: list[Any], second: list[Any]) -> str:
    """Every pair of distinct users where one satisfies ``first`` and the other ``second``,
    as ``(low, high)`` lines.

    A condition is ``["any", labels]`` (at least one line with one of the labels),
    ``["count_eq", label, n]``, ``["count_ge", label, n]``, or ``["any", labels, label,
    "before" | "after", date]`` (also: every line of the user with ``label`` is dated before
    or after the ISO ``date``).
    """
    by_user: dict[int, list[tuple[str, str]]] = {}
    for date, user, label in records:
        by_user.setdefault(user, []).append((date, label))

    def holds(rows: list[tuple[str, str]], condition: list[Any]) -> bool:
        kind = condition[0]
        if kind == "count_eq":
            return sum(1 for _, lab in rows if lab == condition[1]) == condition[2]
        if kind == "count_ge":
            return sum(1 for _, lab in rows if lab == condition[1]) >= condition[2]
        if not any(lab in condition[1] for _, lab in rows):
            return False
        if len(condition) == 2:
            return True
        _, _, label, side, limit = condition
        dates = [d for d, lab in rows if lab == label]
        return all(d < limit for d in dates) if side == "before" else all(d > limit for d in dates)

    ones = [u for u, rows in by_user.items() if holds(rows, first)]
    others = [u for u, rows in by_user.items() if holds(rows, second)]
    pairs = {(min(a, b), max(a, b)) for a in ones for b in others if a != b}
    return "\n".join(f"({a}, {b})" for a, b in sorted(pairs))
