"""What the root sees of a cell's output: verbatim, truncated, or digested."""

from __future__ import annotations

from rlm_engine.engine.calls import call_model
from rlm_engine.engine.state import TreeState
from rlm_engine.engine.tree import CallNode
from rlm_engine.types import Message

DIGEST_SYSTEM = (
    "You condense the output of a code cell for an agent that cannot read it whole. Keep "
    "exact values (numbers, ids, names, dates, error messages) that the instruction asks "
    "for; drop repetition. Answer with the digest only."
)


def truncate_middle(text: str, limit: int) -> str:
    """Keep the head and the tail of ``text`` with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    head = int(limit * 0.6)
    tail = limit - head
    omitted = len(text) - head - tail
    return (
        f"{text[:head]}\n\n[... {omitted:,} characters omitted; print less, or store the "
        f"result in a variable and inspect parts of it ...]\n\n{text[-tail:]}"
    )


async def digest_output(
    state: TreeState,
    text: str,
    instruction: str | None,
    question: str,
    *,
    node: CallNode,
    depth: int,
) -> str:
    """Ask an ephemeral sub-agent to condense ``text``; only its digest reaches the root."""
    wanted = instruction or f"Keep what helps answer this question: {question}"
    body = truncate_middle(text, state.config.digest_input_chars)
    messages = [
        Message("system", DIGEST_SYSTEM),
        Message("user", f"Instruction: {wanted}\n\nOutput ({len(text):,} characters):\n{body}"),
    ]
    completion = await call_model(
        state,
        state.digest_model or state.sub_model,
        messages,
        role="digest",
        node=node,
        depth=depth,
        settings=state.config.sub_settings,
    )
    digest = truncate_middle(completion.text, state.config.max_output_chars)
    return f"[digest of a {len(text):,}-character output]\n{digest}"
