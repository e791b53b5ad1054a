"""Instructions: global and per-session house rules appended to the root's system prompt."""

from __future__ import annotations

from collections.abc import Sequence

from rlm_engine.plugins.base import ModelCallInfo, Plugin
from rlm_engine.types import Message


class InstructionsPlugin(Plugin):
    """The same text is appended on every root turn, so the prompt prefix stays stable."""

    name = "instructions"

    def __init__(self, global_instructions: str = "", session_instructions: str = "") -> None:
        parts = [p.strip() for p in (global_instructions, session_instructions) if p.strip()]
        self.text = "\n\n".join(parts)

    async def before_model_call(self, call: ModelCallInfo) -> Sequence[Message] | None:
        if call.role != "root" or not self.text or not call.messages:
            return None
        first = call.messages[0]
        if first.role != "system":
            return None
        amended = Message("system", f"{first.content}\n\nHouse rules:\n{self.text}")
        return (amended, *call.messages[1:])
