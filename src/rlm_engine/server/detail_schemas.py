"""Bodies of the detail routes: one node's journaled texts, one cell's output window, an
offline replay's outcome. Converted field by field from the service's records."""

from __future__ import annotations

from pydantic import BaseModel, Field

from rlm_engine.server.schemas import CellOut, NodeOut
from rlm_engine.service.details import CellDetail, NodeDetail, PromptMessage, ReplayCheck


class PromptMessageOut(BaseModel):
    role: str
    content: str = Field(description="cut to max_chars characters")
    chars: int = Field(description="the content's full length")

    @classmethod
    def of(cls, message: PromptMessage) -> PromptMessageOut:
        return cls(role=message.role, content=message.content, chars=message.chars)


class NodeDetailOut(BaseModel):
    """A node with its journaled request and response, each cut to ``max_chars``."""

    node: NodeOut
    messages: list[PromptMessageOut] | None = Field(
        description="the request as chat messages, when it was journaled as their JSON"
    )
    request: str | None = Field(
        description="the request's text when it is not messages; None when none is journaled"
    )
    request_chars: int | None
    response: str | None = Field(description="None until the call is journaled")
    response_chars: int | None
    truncated: bool = Field(description="a text was cut: ask again with a larger max_chars")
    max_chars: int

    @classmethod
    def of(cls, detail: NodeDetail) -> NodeDetailOut:
        messages = detail.messages
        return cls(
            node=NodeOut.of(detail.node),
            messages=None if messages is None else [PromptMessageOut.of(m) for m in messages],
            request=detail.request,
            request_chars=detail.request_chars,
            response=detail.response,
            response_chars=detail.response_chars,
            truncated=detail.truncated,
            max_chars=detail.max_chars,
        )


class CellDetailOut(BaseModel):
    """A cell (its ``output`` left out) and ``limit`` characters of its output from
    ``offset``."""

    cell: CellOut
    output: str
    output_chars: int
    offset: int
    limit: int
    next_offset: int | None = Field(description="the offset of the next window; None at the end")

    @classmethod
    def of(cls, detail: CellDetail) -> CellDetailOut:
        return cls(
            cell=CellOut.of(detail.cell, output=False),
            output=detail.output,
            output_chars=detail.output_chars,
            offset=detail.offset,
            limit=detail.limit,
            next_offset=detail.next_offset,
        )


class ReplayOut(BaseModel):
    """An offline re-run of a run from its journal (no model call, nothing recorded)."""

    run_id: str
    answer: str | None
    stop_reason: str | None
    stop_detail: str
    iterations: int
    recorded_answer: str | None
    matched: bool = Field(description="the replay ended with the recorded answer")
    error: str | None = Field(description="why the journal could not carry the replay through")

    @classmethod
    def of(cls, check: ReplayCheck) -> ReplayOut:
        return cls(
            run_id=check.run_id,
            answer=check.answer,
            stop_reason=check.stop_reason,
            stop_detail=check.stop_detail,
            iterations=check.iterations,
            recorded_answer=check.recorded_answer,
            matched=check.matched,
            error=check.error,
        )
