"""Telemetry: context-size metrics of every model call, as events."""

from __future__ import annotations

from collections.abc import Sequence

from rlm_engine.events import ContextMetrics
from rlm_engine.plugins.base import ModelCallInfo, Plugin
from rlm_engine.types import Message


class TelemetryPlugin(Plugin):
    name = "telemetry"

    async def before_model_call(self, call: ModelCallInfo) -> Sequence[Message] | None:
        sizes = [len(m.content) for m in call.messages]
        await call.emit(
            ContextMetrics(
                run_id=call.run_id,
                node_id=call.node_id,
                depth=call.depth,
                role=call.role,
                model=call.model,
                message_count=len(sizes),
                estimated_tokens=sum(sizes) // 4,
                largest_message_chars=max(sizes, default=0),
            )
        )
        return None
