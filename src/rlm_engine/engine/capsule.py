"""History capsule: compact older root turns when the history nears the model's window.

The raw turns stay in the event log; only the root's working history is shortened.
"""

from __future__ import annotations

from collections.abc import Sequence

from rlm_engine.engine.calls import call_model
from rlm_engine.engine.state import TreeState
from rlm_engine.engine.tree import CallNode
from rlm_engine.types import Message

KEEP_RECENT = 4
CAPSULE_HEADER = "[Summary of earlier turns]"
CAPSULE_PROMPT = (
    "Summarise the earlier turns of this REPL session for yourself: what was tried, what was "
    "learned (exact numbers, names of variables that hold results), what failed and why, "
    "and what remains to do. Be brief and precise."
)


def estimate_tokens(messages: Sequence[Message]) -> int:
    return sum(len(m.content) for m in messages) // 4


def needs_compaction(state: TreeState, messages: Sequence[Message]) -> bool:
    limit = state.config.root_context_tokens * state.config.capsule_share
    return len(messages) > 2 + KEEP_RECENT and estimate_tokens(messages) > limit


async def compact(
    state: TreeState, messages: list[Message], *, node: CallNode, depth: int
) -> list[Message]:
    """Replace the middle of the history with a summary folded into the first user turn.

    The kept tail starts with an assistant turn so roles keep alternating.
    """
    system, first = messages[0], messages[1]
    tail_start = len(messages) - KEEP_RECENT
    if messages[tail_start].role != "assistant":
        tail_start -= 1
    middle = messages[2:tail_start]
    if not middle:
        return messages
    base, _, prior = first.content.partition(f"\n\n{CAPSULE_HEADER}\n")
    transcript = "\n\n".join(f"{m.role.upper()}:\n{m.content}" for m in middle)
    if prior:
        transcript = f"EARLIER SUMMARY:\n{prior}\n\n{transcript}"
    completion = await call_model(
        state,
        state.root_model,
        [Message("system", CAPSULE_PROMPT), Message("user", transcript)],
        role="capsule",
        node=node,
        depth=depth,
        settings=state.config.root_settings,
    )
    merged = Message("user", f"{base}\n\n{CAPSULE_HEADER}\n{completion.text}")
    return [system, merged, *messages[tail_start:]]
