"""The run journal: what makes a run resumable and replayable.

Every model call is recorded under its call-tree node (``r/3/17``) with a hash of its
request, and every cell under its node with hashes of its code and output, before the
run takes its next step. Node ids are deterministic: the same root replies produce the
same cells, and the same cells ask for the same sub-calls in the same order. So a resume
simply runs the loop again from the start: journaled calls are answered from the journal
(no model is called twice), journaled cells re-run in a fresh REPL and must reproduce
their recorded output, and the first call the journal does not hold goes to the model.
Each cell's REPL clock starts at a journaled time, and ``random`` is seeded from the run,
so cells reading the time or drawing random numbers replay the same way.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from rlm_engine.engine.tree import CallNode
from rlm_engine.errors import RLMError
from rlm_engine.plugins.base import CellInfo
from rlm_engine.sandbox.base import CellResult
from rlm_engine.types import Completion, Message, ModelSettings, Usage


class NondeterminismError(RLMError):
    """Replay diverged from the journal: the run cannot be resumed faithfully."""


@dataclass(frozen=True, slots=True)
class RecordedCall:
    request_hash: str
    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    finish_reason: str | None = None
    latency_s: float = 0.0

    def completion(self) -> Completion:
        return Completion(
            text=self.text,
            model=self.model,
            usage=self.usage,
            cost_usd=self.cost_usd,
            finish_reason=self.finish_reason,
            latency_s=self.latency_s,
        )


@dataclass(frozen=True, slots=True)
class RecordedCell:
    code_hash: str
    output_hash: str | None
    """``None`` while the cell was executing when the run stopped."""
    clock: float | None = None
    """Wall-clock start the REPL's clock was given (``None`` in older journals)."""


class Journal(Protocol):
    """Durable storage of one run's steps. A write returns once it is durable, except
    ``record_call`` of a root turn and ``finish_cell``, which the next write or ``flush``
    makes durable (nothing acts on them before that)."""

    async def recorded_call(self, node_id: str) -> RecordedCall | None: ...

    async def record_call(
        self, node_id: str, role: str, request_hash: str, completion: Completion
    ) -> None: ...

    async def recorded_cell(self, node_id: str) -> RecordedCell | None: ...

    async def begin_cell(
        self,
        node_id: str,
        iteration: int,
        index: int,
        code: str,
        instruction: str | None,
        clock: float,
    ) -> None: ...

    async def finish_cell(self, node_id: str, result: CellResult, output_hash: str) -> None: ...

    async def flush(self) -> None:
        """Wait until every write is durable: a journal may queue a write that nothing
        outside the host acts on (a root reply, a cell's outcome) and let the next one, or
        this, make it durable."""
        ...


def digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, default=str).encode()).hexdigest()


def request_hash(model: str, messages: Sequence[Message], settings: ModelSettings | None) -> str:
    s = settings or ModelSettings()
    return digest(
        model,
        [[m.role, m.content] for m in messages],
        [s.temperature, s.max_output_tokens, list(s.stop)],
    )


def output_hash(result: CellResult) -> str:
    final = None
    if result.final is not None:
        final = [result.final.kind, result.final.answer, dict(result.final.fields or {})]
    return digest(result.status, result.output, result.error, final)


@dataclass
class MemoryJournal:
    """A journal in memory: for tests, and for replaying a journal loaded elsewhere."""

    calls: dict[str, tuple[str, RecordedCall]] = field(
        default_factory=dict[str, tuple[str, RecordedCall]]
    )
    cells: dict[str, RecordedCell] = field(default_factory=dict[str, RecordedCell])
    model_calls_recorded: int = 0

    async def recorded_call(self, node_id: str) -> RecordedCall | None:
        found = self.calls.get(node_id)
        return found[1] if found is not None else None

    async def record_call(
        self, node_id: str, role: str, request_hash: str, completion: Completion
    ) -> None:
        self.model_calls_recorded += 1
        self.calls[node_id] = (
            role,
            RecordedCall(
                request_hash,
                completion.text,
                completion.model,
                completion.usage,
                completion.cost_usd,
                completion.finish_reason,
                completion.latency_s,
            ),
        )

    async def recorded_cell(self, node_id: str) -> RecordedCell | None:
        return self.cells.get(node_id)

    async def begin_cell(
        self,
        node_id: str,
        iteration: int,
        index: int,
        code: str,
        instruction: str | None,
        clock: float,
    ) -> None:
        self.cells.setdefault(node_id, RecordedCell(digest(code), None, clock))

    async def finish_cell(self, node_id: str, result: CellResult, output_hash: str) -> None:
        previous = self.cells.get(node_id)
        if previous is None:
            previous = RecordedCell("", None)
        self.cells[node_id] = replace(previous, output_hash=output_hash)

    async def flush(self) -> None:
        return None


async def journal_cell_start(
    journal: Journal | None, node: CallNode, info: CellInfo, code: str
) -> tuple[RecordedCell | None, float | None]:
    """Record a cell as executing (durably, before it runs), or check it against the
    journal when it is being replayed. Also returns the start the REPL's clock gets for
    this cell: now on its first run, the journaled one on replay (None without a journal)."""
    if journal is None:
        return None, None
    recorded = await journal.recorded_cell(node.id)
    if recorded is None:
        clock = time.time()
        await journal.begin_cell(
            node.id, info.iteration, info.cell_index, code, info.instruction, clock
        )
        return None, clock
    if recorded.code_hash != digest(code):
        raise NondeterminismError(f"replay diverged at {node.id}: the cell's code differs")
    return recorded, recorded.clock if recorded.clock is not None else time.time()


async def journal_cell_end(
    journal: Journal | None, node: CallNode, result: CellResult, recorded: RecordedCell | None
) -> None:
    """Record a cell's outcome, or check a replayed cell reproduced its recorded outcome."""
    if journal is None:
        return
    produced = output_hash(result)
    if recorded is not None and recorded.output_hash is not None:
        if recorded.output_hash != produced:
            raise NondeterminismError(
                f"replay diverged at {node.id}: the cell printed or returned something other "
                "than what the journal recorded (time, randomness or outside state in the cell?)"
            )
        node.detail["replayed"] = True
        return
    await journal.finish_cell(node.id, result, produced)
