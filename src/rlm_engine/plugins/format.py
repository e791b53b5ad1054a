"""Format: the delegation form of a cell (leading '''instruction''', then code)."""

from __future__ import annotations

from rlm_engine.plugins.base import Block, CellDecision, CellInfo, Plugin


class FormatPlugin(Plugin):
    """Checks that a leading instruction is closed and followed by code. With
    ``strict=True`` every cell must start with an instruction."""

    name = "format"

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict

    async def before_cell(self, cell: CellInfo) -> CellDecision | None:
        stripped = cell.code.lstrip()
        if cell.instruction is None and stripped.startswith(("'''", '"""')):
            quote = stripped[:3]
            if stripped.count(quote) < 2:
                return Block(
                    reason="the leading instruction is not closed: end it with the same "
                    f"{quote} before the code",
                    category="format",
                )
        if cell.instruction is not None and not cell.code.strip():
            return Block(reason="the cell has an instruction but no code", category="format")
        if self.strict and cell.instruction is None:
            return Block(
                reason="start every cell with a '''triple-quoted instruction''' saying what to "
                "extract from its output",
                category="format",
            )
        return None
