"""The run journal kept in the durable store.

Writes go to the store's group-commit writer (`Store.journal_writer`): a dedicated thread
that commits the writes of concurrent sub-calls together, one transaction per group, and
releases each caller once its group is durable. Lookups never touch the store per step: the
run's journal is read once (one read, on the writer thread) the first time it is needed, and
what this journal writes afterwards is added to that index as it becomes durable.

Two writes are held back: a root turn's reply and a cell's outcome. Nothing outside the
host acts on either before the journal's next write (the next cell's start, a sub-call's
reply) or `flush`, which commits them in its own transaction: a turn costs one commit
instead of three. A crash before then loses only steps a resume redoes anyway (call the
root again, run the cell again). The cell's start, which carries them, is not waited for
either: the cell runs while it commits, and the host serves nothing the cell asks for,
and reads no outcome of it, until it is durable (`queued_durable`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Literal, cast

from rlm_engine.engine.journal import RecordedCall, RecordedCell, digest
from rlm_engine.engine.journal_epochs import JournalEpochs
from rlm_engine.engine.snapshots import (
    DEFAULT_SNAPSHOT_MAX_BYTES,
    finish_meta,
    snapshot_meta,
    with_stored,
)
from rlm_engine.errors import RLMError
from rlm_engine.sandbox.base import CellResult
from rlm_engine.store.blobs import sha256_bytes
from rlm_engine.store.errors import StoreError
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
from rlm_engine.types import Completion, Message, ModelSettings, Usage

_KINDS: dict[str, NodeKind] = {
    "root": "root_turn",
    "sub": "llm",
    "digest": "digest",
    "capsule": "capsule",
}


class ReplayExhausted(RLMError):
    """A replay needed a model reply the journal does not hold."""


class OfflineModel:
    """Stands in for a model during an offline replay: it is never supposed to be called."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def provider(self) -> str:
        return self._name.split("/", 1)[0]

    async def complete(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> Completion:
        raise ReplayExhausted(
            f"the journal holds no reply for a call to {self._name}; an offline replay makes "
            "no model calls (use `rlm runs resume` to continue with live models)"
        )


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


_FINISHES_KEPT = 64
"""Cell outcomes kept for the snapshot that follows each (concurrent child REPLs each have
one pending at most)."""


class StoreJournal:
    """Journal of one run in a ``Store``. ``read_only`` journals (offline replay) refuse to
    record: a call missing from the journal ends the replay with ``ReplayExhausted``.

    A run has one journal at a time (a resume claims the run first), so the index read at
    the first lookup stays true: only this journal adds to the run. A ``fresh`` journal is
    that of a run just created, so it knows it is empty and never reads the store for it:
    the first root call needs no store (which may still be opening)."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        *,
        read_only: bool = False,
        accept_divergence: bool = False,
        snapshot_max_bytes: int = DEFAULT_SNAPSHOT_MAX_BYTES,
        fresh: bool = False,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.read_only = read_only
        self.accept_divergence = accept_divergence
        """A replayed cell whose output differs and has no usable snapshot goes on with
        the new output (``supersede``) instead of stopping the run."""
        self.snapshot_max_bytes = 0 if read_only else snapshot_max_bytes
        self._epochs = JournalEpochs()
        self._finishes: dict[str, CellFinish] = {}
        self._cell_keys: dict[str, CellKey] = {}
        self._calls: dict[str, RecordedCall] | None = {} if fresh else None
        self._cells: dict[str, RecordedCell] = {}
        self._loading: Future[JournalSnapshot] | None = None
        self._held: list[JournalWrites] = []
        self._pending: set[asyncio.Task[None]] = set()
        """Writes on their way (a cell's start), for `queued_durable` to wait for."""
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
                reads = cell.meta.get("clock_reads") if finished else None
                self._cells[cell.node_id] = RecordedCell(
                    digest(cell.code),
                    produced if isinstance(produced, str) else None,
                    float(clock) if isinstance(clock, int | float) else None,
                    _reads(reads),
                )
            for cell in snapshot.cells:
                kept = self._cells.get(cell.node_id)
                if kept is not None and self._cell_keys.get(cell.node_id) == cell.key:
                    self._cells[cell.node_id] = with_stored(kept, cell)
            self._epochs.saw([*calls, *self._cells])
            self._calls = calls
        return self._calls

    async def _write(self, writes: JournalWrites) -> None:
        if self._held:
            writes = _joined([*self._held, writes])
            self._held = []
        await self.store.journal_writer.write(writes)

    def _hold(self, writes: JournalWrites) -> None:
        self._held.append(writes)

    def _queue(self, writes: JournalWrites) -> None:
        """Write ``writes`` (and those held) without waiting: `queued_durable` waits for
        them."""
        task = asyncio.get_running_loop().create_task(self._write(writes))
        self._pending.add(task)
        # Retrieved here so that a cancelled run leaves no "never retrieved" warning; a
        # failure is raised by the next `flush`, whoever calls it.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def queued_durable(self) -> None:
        for task in list(self._pending):
            await asyncio.shield(task)  # a caller that stops waiting leaves the write going
            self._pending.discard(task)

    async def flush(self) -> None:
        await self.queued_durable()
        if self._held:
            await self._write(JournalWrites())

    async def recorded_call(self, node_id: str) -> RecordedCall | None:
        node_id = self._epochs.key(node_id)
        return (await self._index()).get(node_id)

    async def record_call(
        self,
        node_id: str,
        role: str,
        request_hash: str,
        completion: Completion,
        request: str | None = None,
    ) -> None:
        node_id = self._epochs.key(node_id)
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
            request=request,
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
        node_id = self._epochs.key(node_id)
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
        node_id = self._epochs.key(node_id)
        if self.read_only:
            raise ReplayExhausted(f"the journal has no cell {node_id}; nothing to replay there")
        start = CellStart(
            self.run_id, node_id, iteration, index, code, instruction, meta={"clock": clock}
        )
        await self._index()
        # The cell runs while its start (and the root reply before it) is committed: the
        # sandbox acts on nothing outside itself but through the host, which serves it
        # only once `queued_durable` returns, as does the engine before it reads the outcome.
        self._queue(JournalWrites(cell_starts=[start]))
        self._cell_keys[node_id] = start.key
        self._cells.setdefault(node_id, RecordedCell(digest(code), None, clock))

    async def finish_cell(self, node_id: str, result: CellResult, output_hash: str) -> None:
        node_id = self._epochs.key(node_id)
        if self.read_only:
            return
        key = self._cell_keys[node_id]
        status: Literal["completed", "failed"] = "completed" if result.status == "ok" else "failed"
        finish = CellFinish(
            key,
            status=status,
            output=result.output,
            error=result.error,
            meta={
                "engine_output_hash": output_hash,
                "cell_status": result.status,
                "clock_reads": list(result.clock_reads),
            },
        )
        finish = replace(finish, meta={**(finish.meta or {}), **finish_meta(result)})
        self._finishes[node_id] = finish
        while len(self._finishes) > _FINISHES_KEPT:  # outputs can be large: keep the recent
            del self._finishes[next(iter(self._finishes))]
        self._hold(JournalWrites(cell_finishes=[finish]))
        previous = self._cells.get(node_id)
        if previous is not None and previous.output_hash is None:
            self._cells[node_id] = RecordedCell(
                previous.code_hash, output_hash, previous.clock, tuple(result.clock_reads)
            )

    # -- snapshots (engine.snapshots) ------------------------------------------------------

    async def keep_snapshot(
        self, node_id: str, data: bytes | None, note: str | None, *, ref: str | None = None
    ) -> str | None:
        """Store a snapshot's bytes (blob first, then the cell's reference to it) and note
        it with cell ``node_id``; the cell's held outcome carries it when still held."""
        node_id = self._epochs.key(node_id)
        finish = self._finishes.pop(node_id, None)
        if self.read_only or finish is None:
            return None
        if data is not None:
            # Not fsynced: a snapshot lost with the machine only means a divergence falls
            # back to the error or --accept-divergence (`snapshot_data` checks the bytes).
            ref = await asyncio.to_thread(self.store.blobs.put, data, durable=False)
        amended = replace(finish, meta={**(finish.meta or {}), **snapshot_meta(ref, note)})
        if not self._amend_held(finish, amended):
            # Already on its way: journaled again with the same outcome, which only merges
            # the snapshot into the cell's meta, with the next write (nothing acts on it).
            self._hold(JournalWrites(cell_finishes=[amended]))
        kept = self._cells.get(node_id)
        if kept is not None:
            self._cells[node_id] = replace(kept, snapshot_ref=ref, snapshot_note=note)
        return ref

    def _amend_held(self, finish: CellFinish, amended: CellFinish) -> bool:
        for i, held in enumerate(self._held):
            if any(f is finish for f in held.cell_finishes):
                finishes = [amended if f is finish else f for f in held.cell_finishes]
                self._held[i] = replace(held, cell_finishes=finishes)
                return True
        return False

    async def snapshot_data(self, ref: str) -> bytes:
        data = await asyncio.to_thread(self.store.blobs.get, ref)
        if sha256_bytes(data) != ref:
            raise StoreError(f"the snapshot blob {ref} is damaged (it was not fsynced)")
        return data

    # -- divergence (engine.divergence) ----------------------------------------------------

    async def successor(self, node_id: str) -> RecordedCell | None:
        """The record of cell ``node_id`` in the next epoch that holds one (an earlier
        resume went on with a new output there); from now on lookups use that epoch."""
        await self._index()
        for key in self._epochs.later_keys(node_id):
            recorded = self._cells.get(key)
            if recorded is not None and recorded.output_hash is not None:
                self._epochs.enter(node_id, key)
                return recorded
        return None

    async def supersede(
        self,
        node_id: str,
        start: tuple[int, int, str, str | None, float],
        result: CellResult,
        produced: str,
    ) -> None:
        """Go on from cell ``node_id`` with a new outcome: a new epoch begins, in which
        this cell and every later step are journaled under ids of their own
        (``r~N/...``), so the superseded entries stay as they were and nothing collides."""
        await self._index()
        self._epochs.begin(node_id)
        iteration, index, code, instruction, clock = start
        await self.begin_cell(node_id, iteration, index, code, instruction, clock)
        await self.finish_cell(node_id, result, produced)


def _reads(value: object) -> tuple[int, ...] | None:
    """A finished cell's journaled precise-clock reads (``None`` in older journals)."""
    if not isinstance(value, list):
        return None
    items = cast(list[object], value)
    return tuple(r for r in items if isinstance(r, int) and not isinstance(r, bool))


def _joined(batches: list[JournalWrites]) -> JournalWrites:
    return JournalWrites(
        calls=[c for b in batches for c in b.calls],
        cell_starts=[c for b in batches for c in b.cell_starts],
        cell_finishes=[c for b in batches for c in b.cell_finishes],
    )
