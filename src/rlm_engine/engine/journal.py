"""The run journal: what makes a run resumable and replayable.

Every model call is recorded under its call-tree node (``r/3/17``) with a hash of its
request, and every cell under its node with hashes of its code and output, before the
run takes its next step. Node ids are deterministic: the same root replies produce the
same cells, and the same cells ask for the same sub-calls in the same order. So a resume
simply runs the loop again from the start: journaled calls are answered from the journal
(no model is called twice), journaled cells re-run in a fresh REPL and must reproduce
their recorded output, and the first call the journal does not hold goes to the model.
Each cell's REPL clock starts at a journaled time, its randomness (``random``, ``os.urandom``,
``secrets``, ``uuid4``) is seeded from the run and the cell, and the precise clocks it read
(``monotonic``, ``perf_counter``) are journaled with it and replayed, so cells reading the
time or drawing random numbers replay the same way (``sandbox/worker_clock.py``).
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
from rlm_engine.sandbox.base import CellClock, CellResult
from rlm_engine.types import Completion, Message, ModelSettings, Usage


class NondeterminismError(RLMError):
    """Replay diverged from the journal: the run cannot be resumed faithfully."""


ACCEPT_HINT = (
    "resume with `rlm runs resume --accept-divergence RUN_ID` to go on with the new "
    "outputs (the root model is told which ones changed)"
)


class CellDiverged(NondeterminismError):
    """A replayed cell printed or returned something other than its journaled outcome."""

    hint = ACCEPT_HINT

    def __init__(
        self, node_id: str, recorded: RecordedCell, result: CellResult, label: str = ""
    ) -> None:
        self.node_id = node_id
        self.recorded = recorded
        self.result = result
        where = f"{label} ({node_id})" if label else node_id
        super().__init__(
            f"replay diverged at {where}: the cell printed or returned something other "
            f"than what the journal recorded ({describe_change(recorded.outcome, result)})"
        )


def brief(text: str, limit: int = 120) -> str:
    """One line of at most ``limit`` characters, for messages and prompts."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def describe_change(old: CellResult | None, new: CellResult) -> str:
    """What differs between a journaled outcome and a replayed one, briefly."""
    if old is None:
        return f"now {new.status}: {brief(new.output or new.error or '')!r}"
    if old.status != new.status:
        return f"status was {old.status}, now {new.status}"
    if old.output != new.output:
        return f"output was {brief(old.output)!r}, now {brief(new.output)!r}"
    if old.error != new.error:
        return f"error was {brief(old.error or '')!r}, now {brief(new.error or '')!r}"
    return "the FINAL/SUBMIT value differs"


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
    reads: tuple[int, ...] | None = None
    """The precise-clock reads of the finished cell, to replay (``None`` in older journals)."""
    outcome: CellResult | None = None
    """What the cell returned, as journaled (``None`` while executing, or in older journals)."""
    snapshot_ref: str | None = None
    """Blob of the namespace snapshot taken after the cell (``engine.snapshots``)."""
    snapshot_note: str | None = None
    """Why the cell has no snapshot, or which variables its snapshot left out."""


class Journal(Protocol):
    """Durable storage of one run's steps. A write returns once it is durable, except:
    ``record_call`` of a root turn and ``finish_cell`` are held for the next write or
    ``flush`` to make durable (nothing acts on them before that); ``begin_cell`` returns
    once its write (with those held before it) is queued, and ``queued_durable`` waits for
    it: the host serves nothing a cell asks for, and reads no outcome of it, before then."""

    async def recorded_call(self, node_id: str) -> RecordedCall | None: ...

    async def record_call(
        self,
        node_id: str,
        role: str,
        request_hash: str,
        completion: Completion,
        request: str | None = None,
    ) -> None:
        """Keep a call's outcome; ``request`` is what `journaled_request` kept of what it
        asked, for people reading the run (a replay compares ``request_hash`` only)."""
        ...

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

    async def queued_durable(self) -> None:
        """Wait until the writes queued so far (a cell's start) are durable; raises the
        error of one that failed."""
        ...

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


REQUEST_KEPT_CHARS = 16_384
"""How much of each message of a request the journal keeps for reading."""


def journaled_request(role: str, messages: Sequence[Message]) -> str:
    """What the journal keeps of a request, as the JSON of its messages: a sub-call's
    messages, a root turn's since its last reply (the earlier ones are in the earlier
    turns), each cut to its first `REQUEST_KEPT_CHARS` characters (``chars`` then gives
    the whole length). Bounded, so a fan-out over a large context does not store the
    context again."""
    shown = messages
    if role == "root":
        last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
        shown = messages[last + 1 :]
    kept: list[dict[str, object]] = []
    for m in shown:
        item: dict[str, object] = {"role": m.role, "content": m.content[:REQUEST_KEPT_CHARS]}
        if len(m.content) > REQUEST_KEPT_CHARS:
            item["chars"] = len(m.content)
        kept.append(item)
    return json.dumps(kept, ensure_ascii=False)


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
        self,
        node_id: str,
        role: str,
        request_hash: str,
        completion: Completion,
        request: str | None = None,
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
        self.cells[node_id] = replace(
            previous, output_hash=output_hash, reads=tuple(result.clock_reads), outcome=result
        )

    async def queued_durable(self) -> None:
        return None

    async def flush(self) -> None:
        return None


def cell_entropy(run_id: str, node_id: str) -> str:
    """The seed of a journaled cell's randomness (``sandbox/worker_entropy.py``): the same
    for every replay of the cell, different for every other cell and run."""
    return digest("entropy", run_id, node_id)


async def journal_cell_start(
    journal: Journal | None, node: CallNode, info: CellInfo, code: str, run_id: str = ""
) -> tuple[RecordedCell | None, CellClock | None]:
    """Record a cell as executing (durable before the host serves the cell or reads its
    outcome: `Journal.queued_durable`), or check it against the journal when it is being
    replayed. Also returns the REPL's clock for this cell (None without a journal): on its
    first run it starts now, on replay at the journaled start with the journaled
    precise-clock reads; its entropy is seeded from ``run_id`` and the cell's node id
    either way."""
    if journal is None:
        return None, None
    entropy = cell_entropy(run_id, node.id)
    recorded = await journal.recorded_cell(node.id)
    if recorded is None:
        clock = time.time()
        await journal.begin_cell(
            node.id, info.iteration, info.cell_index, code, info.instruction, clock
        )
        return None, CellClock(clock, entropy)
    if recorded.code_hash != digest(code):
        raise NondeterminismError(f"replay diverged at {node.id}: the cell's code differs")
    start = recorded.clock if recorded.clock is not None else time.time()
    reads = recorded.reads if recorded.output_hash is not None else None
    return recorded, CellClock(start, entropy, reads)


async def journal_cell_end(
    journal: Journal | None, node: CallNode, result: CellResult, recorded: RecordedCell | None
) -> None:
    """Record a cell's outcome, or check a replayed cell reproduced its recorded outcome."""
    if journal is None:
        return
    produced = output_hash(result)
    if recorded is not None and recorded.output_hash is not None:
        if recorded.output_hash != produced:
            raise CellDiverged(node.id, recorded, result, node.label)
        node.detail["replayed"] = True
        return
    await journal.finish_cell(node.id, result, produced)
