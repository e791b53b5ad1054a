"""The run journal kept in the durable store.

Writes go to the store's group-commit writer (`Store.journal_writer`): a dedicated thread
that commits the writes of concurrent sub-calls together, one transaction per group, and
releases each caller once its group is durable. Lookups never touch the store per step: the
run's journal is read once (one read, on the writer thread) the first time it is needed, and
what this journal writes afterwards is added to that index as it becomes durable.

Two writes are held back: a root turn's reply and a cell's outcome. Nothing outside the
host acts on either before the journal's next write (the next cell's start, a sub-call's
reply) or `flush`, which commits them in its own transaction: a turn costs one commit
instead of three. A crash before
then loses only steps a resume redoes anyway (call the root again, run the cell again).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Literal

from rlm_engine.engine.journal import RecordedCall, RecordedCell, digest
from rlm_engine.errors import RLMError
from rlm_engine.sandbox.base import CellResult
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import (
    TERMINAL_CELL_STATUSES,
    CellFinish,
    CellKey,
    CellStart,
    JournalSnapshot,
    JournalWrites,
    ModelCall,
    NodeKind,
)
from rlm_engine.store.records import Usage as StoredUsage
from rlm_engine.types import Completion, Usage

_KINDS: dict[str, NodeKind] = {
    "root": "root_turn",
    "sub": "llm",
    "digest": "digest",
    "capsule": "capsule",
}


class ReplayExhausted(RLMError):
    """A replay needed a model reply the journal does not hold."""


def _parent(node_id: str) -> str | None:
    return node_id.rsplit("/", 1)[0] if "/" in node_id else None


def _recorded_call(call: ModelCall) -> RecordedCall | None:
    if call.status != "completed":
        return None
    finish = call.meta.get("finish_reason")
    return RecordedCall(
        request_hash=call.request_hash,
        text=call.response,
        model=call.model or "",
        usage=Usage(call.usage.input_tokens, call.usage.output_tokens, call.usage.cached_tokens, 1),
        cost_usd=call.cost_usd,
        finish_reason=finish if isinstance(finish, str) else None,
        latency_s=call.latency_s or 0.0,
    )


class StoreJournal:
    """Journal of one run in a ``Store``. ``read_only`` journals (offline replay) refuse to
    record: a call missing from the journal ends the replay with ``ReplayExhausted``.

    A run has one journal at a time (a resume claims the run first), so the index read at
    the first lookup stays true: only this journal adds to the run."""

    def __init__(self, store: Store, run_id: str, *, read_only: bool = False) -> None:
        self.store = store
        self.run_id = run_id
        self.read_only = read_only
        self._cell_keys: dict[str, CellKey] = {}
        self._calls: dict[str, RecordedCall] | None = None
        self._cells: dict[str, RecordedCell] = {}
        self._loading: Future[JournalSnapshot] | None = None
        self._held: list[JournalWrites] = []
        self.loads = 0
        """How many times the run's journal was read from the store (once, normally)."""

    async def _index(self) -> dict[str, RecordedCall]:
        if self._calls is not None:
            return self._calls
        if self._loading is None:
            run_id = self.run_id
            self._loading = self.store.journal_writer.call(lambda: self.store.load_journal(run_id))
            self.loads += 1
        loading = self._loading
        try:
            snapshot = await asyncio.wrap_future(loading)
        except Exception:
            if self._loading is loading:
                self._loading = None  # the next lookup reads again
            raise
        if self._calls is None:
            calls: dict[str, RecordedCall] = {}
            for node_id, call in snapshot.calls.items():
                recorded = _recorded_call(call)
                if recorded is not None:
                    calls[node_id] = recorded
            for cell in snapshot.cells:
                if cell.node_id in self._cells:
                    continue  # a REPL node's first cell is the one it journals
                self._cell_keys[cell.node_id] = cell.key
                finished = cell.status in TERMINAL_CELL_STATUSES
                produced = cell.meta.get("engine_output_hash") if finished else None
                clock = cell.meta.get("clock")
                self._cells[cell.node_id] = RecordedCell(
                    digest(cell.code),
                    produced if isinstance(produced, str) else None,
                    float(clock) if isinstance(clock, int | float) else None,
                )
            self._calls = calls
        return self._calls

    async def _write(self, writes: JournalWrites) -> None:
        if self._held:
            writes = _joined([*self._held, writes])
            self._held = []
        await self.store.journal_writer.write(writes)

    def _hold(self, writes: JournalWrites) -> None:
        self._held.append(writes)

    async def flush(self) -> None:
        """Make the writes held back so far durable."""
        if self._held:
            await self._write(JournalWrites())

    async def recorded_call(self, node_id: str) -> RecordedCall | None:
        return (await self._index()).get(node_id)

    async def record_call(
        self, node_id: str, role: str, request_hash: str, completion: Completion
    ) -> None:
        if self.read_only:
            raise ReplayExhausted(
                f"the journal has no reply for {node_id} ({role}); an offline replay makes no "
                "model calls. Use `rlm runs resume` to continue the run with live models."
            )
        usage = completion.usage
        call = ModelCall(
            run_id=self.run_id,
            node_id=node_id,
            kind=_KINDS.get(role, "llm"),
            request_hash=request_hash,
            response=completion.text,
            parent_id=_parent(node_id),
            model=completion.model,
            usage=StoredUsage(usage.input_tokens, usage.output_tokens, usage.cached_tokens),
            cost_usd=completion.cost_usd,
            latency_s=completion.latency_s,
            meta={"finish_reason": completion.finish_reason, "provider": completion.provider},
        )
        index = await self._index()
        if role == "root":
            self._hold(JournalWrites(calls=[call]))
        else:  # a sub-call's reply goes into the cell: durable first
            await self._write(JournalWrites(calls=[call]))
        recorded = _recorded_call(call)
        if recorded is not None and node_id not in index:
            index[node_id] = recorded

    async def recorded_cell(self, node_id: str) -> RecordedCell | None:
        await self._index()
        return self._cells.get(node_id)

    async def begin_cell(
        self,
        node_id: str,
        iteration: int,
        index: int,
        code: str,
        instruction: str | None,
        clock: float,
    ) -> None:
        if self.read_only:
            raise ReplayExhausted(f"the journal has no cell {node_id}; nothing to replay there")
        start = CellStart(
            self.run_id, node_id, iteration, index, code, instruction, meta={"clock": clock}
        )
        await self._index()
        await self._write(JournalWrites(cell_starts=[start]))
        self._cell_keys[node_id] = start.key
        self._cells.setdefault(node_id, RecordedCell(digest(code), None, clock))

    async def finish_cell(self, node_id: str, result: CellResult, output_hash: str) -> None:
        if self.read_only:
            return
        key = self._cell_keys[node_id]
        status: Literal["completed", "failed"] = "completed" if result.status == "ok" else "failed"
        finish = CellFinish(
            key,
            status=status,
            output=result.output,
            error=result.error,
            meta={"engine_output_hash": output_hash, "cell_status": result.status},
        )
        self._hold(JournalWrites(cell_finishes=[finish]))
        previous = self._cells.get(node_id)
        if previous is not None and previous.output_hash is None:
            self._cells[node_id] = RecordedCell(previous.code_hash, output_hash, previous.clock)


def _joined(batches: list[JournalWrites]) -> JournalWrites:
    return JournalWrites(
        calls=[c for b in batches for c in b.calls],
        cell_starts=[c for b in batches for c in b.cell_starts],
        cell_finishes=[c for b in batches for c in b.cell_finishes],
    )
