"""Safety: block destructive operations before a cell runs.

A guard against accidents and a signal in the trace. It is not the security boundary:
the sandbox is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rlm_engine.plugins.base import Block, CellDecision, CellInfo, Plugin
from rlm_engine.plugins.safety_patterns import DEFAULT_PATTERNS, SafetyPattern


@dataclass(frozen=True, slots=True)
class SafetyMatch:
    pattern: SafetyPattern
    line: int
    text: str


def scan(code: str, patterns: Sequence[SafetyPattern] = DEFAULT_PATTERNS) -> list[SafetyMatch]:
    """Every pattern that matches ``code``, with the line it matched on."""
    found: list[SafetyMatch] = []
    for pattern in patterns:
        match = pattern.regex.search(code)
        if match is not None:
            line = code.count("\n", 0, match.start()) + 1
            found.append(SafetyMatch(pattern, line, match.group(0).strip()[:120]))
    return found


class SafetyPlugin(Plugin):
    """Blocks a cell when a match reaches ``threshold``; counts its blocks."""

    name = "safety"

    def __init__(
        self, *, threshold: int = 7, patterns: Sequence[SafetyPattern] = DEFAULT_PATTERNS
    ) -> None:
        self.threshold = threshold
        self.patterns = tuple(patterns)
        self.blocked = 0

    async def before_cell(self, cell: CellInfo) -> CellDecision | None:
        matches = [
            m for m in scan(cell.code, self.patterns) if m.pattern.severity >= self.threshold
        ]
        if not matches:
            return None
        self.blocked += 1
        worst = max(matches, key=lambda m: m.pattern.severity)
        return Block(
            reason=f"destructive operation ({worst.pattern.description}); this REPL does not run "
            "it. Work on the data read-only and answer from it.",
            category=worst.pattern.category,
            severity=worst.pattern.severity,
            details=[
                f"line {m.line}: {m.pattern.category}: {m.pattern.description} "
                f"(severity {m.pattern.severity}): {m.text}"
                for m in matches
            ],
        )
