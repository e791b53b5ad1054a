"""The run journal kept in the durable store.

Store calls are short synchronous transactions that fsync before returning, so they run
in a worker thread: the event loop keeps serving the rest of a fan-out meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from rlm_engine.engine.journal import RecordedCall, RecordedCell, digest
from rlm_engine.errors import RLMError
from rlm_engine.sandbox.base import CellResult
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import TERMINAL_CELL_STATUSES, CellKey, CellStart, ModelCall, NodeKind
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


class StoreJournal:
    """Journal of one run in a ``Store``. ``read_only`` journals (offline replay) refuse to
    record: a call missing from the journal ends the replay with ``ReplayExhausted``."""

    def __init__(self, store: Store, run_id: str, *, read_only: bool = False) -> None:
        self.store = store
        self.run_id = run_id
        self.read_only = read_only
        self._cell_keys: dict[str, CellKey] = {}

    async def recorded_call(self, node_id: str) -> RecordedCall | None:
        call = await asyncio.to_thread(self.store.find_model_call, self.run_id, node_id)
        if call is None or call.status != "completed":
            return None
        finish = call.meta.get("finish_reason")
        return RecordedCall(
            request_hash=call.request_hash,
            text=call.response,
            model=call.model or "",
            usage=Usage(
                call.usage.input_tokens, call.usage.output_tokens, call.usage.cached_tokens, 1
            ),
            cost_usd=call.cost_usd,
            finish_reason=finish if isinstance(finish, str) else None,
            latency_s=call.latency_s or 0.0,
        )

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
        await asyncio.to_thread(self.store.record_model_call, call)

    async def recorded_cell(self, node_id: str) -> RecordedCell | None:
        cells = await asyncio.to_thread(self.store.list_cells, self.run_id, node_id=node_id)
        if not cells:
            return None
        cell = cells[0]
        self._cell_keys[node_id] = cell.key
        finished = cell.status in TERMINAL_CELL_STATUSES
        produced = cell.meta.get("engine_output_hash") if finished else None
        clock = cell.meta.get("clock")
        return RecordedCell(
            digest(cell.code),
            produced if isinstance(produced, str) else None,
            float(clock) if isinstance(clock, int | float) else None,
        )

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
        self._cell_keys[node_id] = start.key
        await asyncio.to_thread(self.store.begin_cell, start)

    async def finish_cell(self, node_id: str, result: CellResult, output_hash: str) -> None:
        if self.read_only:
            return
        key = self._cell_keys[node_id]
        status: Literal["completed", "failed"] = "completed" if result.status == "ok" else "failed"
        await asyncio.to_thread(
            lambda: self.store.finish_cell(
                key,
                status=status,
                output=result.output,
                error=result.error,
                meta={"engine_output_hash": output_hash, "cell_status": result.status},
            )
        )
