"""Lint: reject code Python cannot parse, without a sandbox round trip."""

from __future__ import annotations

import ast

from rlm_engine.plugins.base import Block, CellDecision, CellInfo, Plugin

CONTEXT_LINES = 2


def syntax_report(code: str, error: SyntaxError) -> list[str]:
    """The error's position and message with the surrounding lines, the bad one marked."""
    lines = code.splitlines()
    line_no = error.lineno or 1
    col = error.offset or 1
    report = [f"SyntaxError: {error.msg} (line {line_no}, column {col})"]
    start = max(1, line_no - CONTEXT_LINES)
    end = min(len(lines), line_no + CONTEXT_LINES)
    for number in range(start, end + 1):
        marker = ">>" if number == line_no else "  "
        report.append(f"{marker} {number:4d} | {lines[number - 1]}")
        if number == line_no:
            report.append(f"   {'':4s}   {' ' * (col - 1)}^")
    return report


class LintPlugin(Plugin):
    name = "lint"

    async def before_cell(self, cell: CellInfo) -> CellDecision | None:
        try:
            ast.parse(cell.code)
        except SyntaxError as exc:
            return Block(
                reason="the cell does not parse; fix the syntax and resend it",
                category="syntax",
                severity=10,
                details=syntax_report(cell.code, exc),
            )
        return None
