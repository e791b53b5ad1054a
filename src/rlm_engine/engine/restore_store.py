"""An earlier run of a session, read from a ``Store`` for ``engine.restore``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from rlm_engine.engine.journal_epochs import epoch_of
from rlm_engine.engine.restore import PastCell, PastRun
from rlm_engine.sandbox.base import ContextValue
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import TERMINAL_CELL_STATUSES, Cell, JournalSnapshot, Run


def _is_root_cell(node_id: str) -> bool:
    """A cell of the run's own REPL (``r/N``); a child RLM's cells sit deeper."""
    return node_id.count("/") == 1


def _past_cell(cell: Cell) -> PastCell:
    clock = cell.meta.get("clock")
    produced = cell.meta.get("engine_output_hash")
    status = cell.meta.get("cell_status")
    reads = cell.meta.get("clock_reads")
    return PastCell(
        node_id=cell.node_id,
        iteration=cell.iteration,
        index=cell.cell_index,
        code=cell.code,
        instruction=cell.instruction,
        clock=float(clock) if isinstance(clock, int | float) else None,
        reads=_reads(reads),
        status=status if isinstance(status, str) else "ok",
        output_hash=produced if isinstance(produced, str) else None,
    )


def _reads(value: object) -> tuple[int, ...] | None:
    if not isinstance(value, list):
        return None
    items = cast(list[object], value)
    return tuple(v for v in items if isinstance(v, int) and not isinstance(v, bool))


def _has_children(snapshot: JournalSnapshot) -> bool:
    """Whether a child RLM ran: its root turns sit below a cell (``r/3/0/1``)."""
    return any(c.kind == "root_turn" and c.node_id.count("/") > 1 for c in snapshot.calls.values())


def _followed(cells: Iterable[Cell]) -> list[Cell]:
    """The cells of the history the run followed, in order: after an accepted divergence
    (``engine.journal_epochs``) a later epoch replaces every cell from where it began."""
    by_epoch: dict[int, list[Cell]] = {}
    for cell in cells:
        by_epoch.setdefault(epoch_of(cell.node_id), []).append(cell)
    history: list[Cell] = []
    for epoch in sorted(by_epoch):
        found = sorted(by_epoch[epoch], key=_position)
        start = _position(found[0])
        history = [c for c in history if _position(c) < start] + found
    return history


def _position(cell: Cell) -> tuple[int, int]:
    return (cell.iteration, cell.cell_index)


def past_run(store: Store, run: Run, context: ContextValue) -> PastRun:
    """``run``'s root cells in the order they ran, with what their sub-calls got back:
    journaled model replies, and the answers of child RLMs (their ``final`` events)."""
    snapshot = store.load_journal(run.run_id)
    cells = _followed(
        c
        for c in snapshot.cells
        if _is_root_cell(c.node_id) and c.status in TERMINAL_CELL_STATUSES and c.status != "blocked"
    )
    replies = {
        node_id: call.response
        for node_id, call in snapshot.calls.items()
        if call.status == "completed" and call.kind == "llm"
    }
    if _has_children(snapshot):
        for event in store.list_events(run.run_id):
            answer = event.body.get("answer")
            if event.type == "final" and event.depth > 0 and isinstance(answer, str):
                replies.setdefault(event.node_id, answer)
    return PastRun(
        run_id=run.run_id,
        question=run.question,
        answer=run.answer or "",
        context=context,
        cells=[_past_cell(c) for c in cells],
        replies=replies,
    )
