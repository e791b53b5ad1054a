"""Parsing of the root model's replies: code cells, delegation instructions, FINAL."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"```(?P<lang>[A-Za-z0-9_+-]*)[ \t]*\n(?P<body>.*?)```", re.DOTALL)
_CODE_LANGS = frozenset({"repl", "python", "py", "python3"})
_INSTRUCTION = re.compile(r"\A\s*(?P<q>'''|\"\"\")(?P<text>.*?)(?P=q)[ \t]*\n?", re.DOTALL)
_FINAL_VAR = re.compile(
    r"^\s*FINAL_VAR\(\s*['\"]?(?P<name>[A-Za-z_][A-Za-z0-9_]*)['\"]?\s*\)", re.M
)
_FINAL_START = re.compile(r"^\s*FINAL\(", re.M)


@dataclass(frozen=True, slots=True)
class Cell:
    """One code block from a reply. ``instruction`` is the leading ``'''...'''`` blob that
    tells the digest agent what to extract from this cell's output."""

    code: str
    instruction: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedReply:
    cells: tuple[Cell, ...]
    final_answer: str | None = None
    final_var: str | None = None

    @property
    def has_final(self) -> bool:
        return self.final_answer is not None or self.final_var is not None


def split_instruction(code: str) -> Cell:
    """Separate a leading ``'''instruction'''`` string from the code that follows it."""
    match = _INSTRUCTION.match(code)
    if match is None:
        return Cell(code=code.strip("\n"))
    rest = code[match.end() :]
    return Cell(code=rest.strip("\n"), instruction=match.group("text").strip())


def _balanced_call_argument(text: str, open_index: int) -> str | None:
    """Return the text between the parenthesis at ``open_index`` and its partner."""
    depth = 0
    quote: str | None = None
    i = open_index
    while i < len(text):
        ch = text[i]
        if quote is not None:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return text[open_index + 1 : i]
        i += 1
    # Unbalanced: take the rest of the text, which is what the model most likely meant.
    return text[open_index + 1 :].rstrip().removesuffix(")")


def _unquote(value: str) -> str:
    value = value.strip()
    for q in ('"""', "'''", '"', "'"):
        if len(value) >= 2 * len(q) and value.startswith(q) and value.endswith(q):
            return value[len(q) : -len(q)]
    return value


def parse_reply(text: str) -> ParsedReply:
    """Find code cells and a plain-text FINAL. A FINAL inside a code fence is code, not an
    answer: it runs in the REPL like any other call."""
    cells: list[Cell] = []
    for match in _FENCE.finditer(text):
        if match.group("lang").lower() not in _CODE_LANGS:
            continue
        cell = split_instruction(match.group("body"))
        if cell.code.strip():
            cells.append(cell)
    outside = _FENCE.sub("", text)
    var = _FINAL_VAR.search(outside)
    if var is not None:
        return ParsedReply(cells=tuple(cells), final_var=var.group("name"))
    start = _FINAL_START.search(outside)
    if start is None:
        return ParsedReply(cells=tuple(cells))
    argument = _balanced_call_argument(outside, start.end() - 1)
    answer = _unquote(argument) if argument is not None else None
    return ParsedReply(cells=tuple(cells), final_answer=answer)
