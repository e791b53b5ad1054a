"""A run's progress and answer as OpenAI streaming chunks.

While the run goes, its events become ``reasoning_content`` deltas (where reasoning
models' clients show "thinking"): each root iteration as it starts and ends, with the
sub-calls made so far. The answer follows as ``content``, then the finish reason, then
(``stream_options.include_usage``) a chunk with the whole tree's usage and no choices.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlm_engine.mcp.progress import ProgressNotes
from rlm_engine.server.openai_schemas import (
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    CompletionUsage,
)

__all__ = ["ChunkMaker", "ProgressNotes"]


@dataclass(frozen=True, slots=True)
class ChunkMaker:
    """Chunks of one completion: the same id, creation time and model on each."""

    id: str
    created: int
    model: str
    run_id: str

    def _chunk(
        self,
        delta: ChunkDelta | None,
        *,
        finish_reason: str | None = None,
        usage: CompletionUsage | None = None,
    ) -> str:
        choices = [] if delta is None else [ChunkChoice(delta=delta, finish_reason=finish_reason)]
        chunk = ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=choices,
            usage=usage,
            run_id=self.run_id,
        )
        return chunk.model_dump_json(exclude_none=True)

    def role(self) -> str:
        return self._chunk(ChunkDelta(role="assistant", content=""))

    def reasoning(self, text: str) -> str:
        return self._chunk(ChunkDelta(reasoning_content=text))

    def content(self, text: str) -> str:
        return self._chunk(ChunkDelta(content=text))

    def finish(self, reason: str) -> str:
        return self._chunk(ChunkDelta(), finish_reason=reason)

    def usage(self, usage: CompletionUsage) -> str:
        return self._chunk(None, usage=usage)
