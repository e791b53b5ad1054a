"""A scripted root for recursion tests: every RLM fans out one level down and sums."""

from __future__ import annotations

from collections.abc import Sequence

from rlm_engine.events import CellFinished, Event
from rlm_engine.types import Message

WIDTH = 5


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"


def level_of(messages: Sequence[Message]) -> int:
    """The N of a question "level N ..." (the root is asked "level 0")."""
    question = messages[1].content.split("Question: ", 1)[1].split("\n", 1)[0]
    return int(question.split()[1])


def fan_out(messages: Sequence[Message]) -> str:
    """Every RLM asks ``WIDTH`` children one level down and sums their answers; a cell
    that comes back (the first one timed out or failed) ends the run with what it saw."""
    if any(m.role == "assistant" for m in messages):
        return f"FINAL(stalled: {messages[-1].content[-300:]!r})"
    below = level_of(messages) + 1
    prompts = f"[f'level {below} part {{i}}' for i in range({WIDTH})]"
    return fence(
        f"answers = rlm_query_batched({prompts})\nFINAL(str(sum(int(a) for a in answers)))"
    )


def cell_statuses(events: list[Event]) -> set[str]:
    return {e.status for e in events if isinstance(e, CellFinished)}
