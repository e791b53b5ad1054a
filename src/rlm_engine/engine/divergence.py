"""What a resume does when a replayed cell does not reproduce its journaled outcome.

In order: the journal may hold a later epoch that went on from this cell (an earlier
``--accept-divergence`` resume), whose record is then the one to match; else the
namespace is restored in a NEW sandbox from the snapshot taken after the cell, and the
run goes on with the journaled outcome, so the root sees exactly the journaled history;
else, with ``accept_divergence``, the new outcome stands, a new journal epoch begins
(``engine.journal_epochs``) and the root's next prompt says which outputs changed; else
the run stops with ``NondeterminismError`` and the hint to accept the divergence.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol, runtime_checkable

from rlm_engine.engine.journal import (
    ACCEPT_HINT,
    CellDiverged,
    Journal,
    NondeterminismError,
    RecordedCell,
    describe_change,
    journal_cell_end,
    output_hash,
)
from rlm_engine.engine.snapshots import KeepsSnapshots, kept_note
from rlm_engine.engine.tree import CallNode
from rlm_engine.errors import SandboxError
from rlm_engine.sandbox.base import CellResult, Sandbox, SnapshotsNamespace
from rlm_engine.store.errors import StoreError

log = logging.getLogger("rlm_engine.engine")

CellStart = tuple[int, int, str, str | None, float]
"""(iteration, cell index, code, instruction, clock start) of a cell, to journal it again."""


@runtime_checkable
class Rejournals(Protocol):
    """A journal that can follow or start epochs (``StoreJournal``)."""

    accept_divergence: bool

    async def successor(self, node_id: str) -> RecordedCell | None: ...

    async def supersede(
        self, node_id: str, start: CellStart, result: CellResult, produced: str
    ) -> None: ...


class Swap(Protocol):
    """Boots a new sandbox as the REPL's, returning (new, previous)."""

    def __call__(self) -> Awaitable[tuple[Sandbox, Sandbox | None]]: ...


class Divergences:
    """One REPL's replay divergences: restores, accepted changes, and the note for the
    root's next prompt."""

    def __init__(
        self,
        journal: Journal | None,
        *,
        run_id: str,
        swap: Swap,
        adopt: Callable[[Sandbox | None], None],
        restarted: Callable[[str], Awaitable[None]],
    ) -> None:
        self._journal = journal
        self._run_id = run_id
        self._swap = swap
        self._adopt = adopt
        self._restarted = restarted
        self._changes: list[str] = []
        self.restored: list[str] = []
        """Node ids of the cells restored from their snapshots."""

    async def cell_end(
        self, node: CallNode, result: CellResult, recorded: RecordedCell | None, start: CellStart
    ) -> tuple[CellResult, bool]:
        """Journal or check a cell's outcome; returns the outcome the run goes on with and
        whether it is newly journaled (so a snapshot of it should be kept)."""
        journal = self._journal
        fresh = journal is not None and (recorded is None or recorded.output_hash is None)
        try:
            await journal_cell_end(journal, node, result, recorded)
            return result, fresh
        except CellDiverged as exc:
            diverged = exc
        # (the record the epoch we follow went on from, its own record of this cell)
        entered: tuple[RecordedCell, RecordedCell] | None = None
        while isinstance(journal, Rejournals):
            later = await journal.successor(node.id)
            if later is None:
                break
            entered = (diverged.recorded, later)
            try:
                await journal_cell_end(journal, node, result, later)
            except CellDiverged as exc:
                diverged = exc
                continue
            # The root was told of this change when that epoch began: tell it again, or
            # its next request would not be the journaled one.
            self._changed(node, start, entered[0], result)
            return result, False
        restored = await self._restore(node, diverged.recorded, result)
        if restored is not None:
            if entered is not None:
                self._changed(node, start, entered[0], restored)
            return restored, False
        if isinstance(journal, Rejournals) and journal.accept_divergence:
            await journal.supersede(node.id, start, result, output_hash(result))
            change = self._changed(node, start, diverged.recorded, result)
            log.warning(
                "%s (%s) printed something new on replay; the run goes on with it "
                "(--accept-divergence): %s",
                node.label or node.id,
                node.id,
                change,
            )
            return result, True
        raise NondeterminismError(
            f"{diverged}; it cannot be restored from a snapshot: {kept_note(diverged.recorded)}",
            hint=ACCEPT_HINT.replace("RUN_ID", self._run_id),
        ) from diverged

    def _changed(
        self, node: CallNode, start: CellStart, before: RecordedCell, result: CellResult
    ) -> str:
        change = describe_change(before.outcome, result)
        node.detail["diverged"] = change
        self._changes.append(f"- cell {start[0]}.{start[1] + 1} ({node.id}): {change}")
        return change

    async def _restore(
        self, node: CallNode, recorded: RecordedCell, result: CellResult
    ) -> CellResult | None:
        """The journaled outcome, with the REPL rebuilt from the cell's snapshot in a new
        sandbox; None (and the REPL as it was) when there is no usable snapshot."""
        journal = self._journal
        ref, outcome = recorded.snapshot_ref, recorded.outcome
        if ref is None or outcome is None or not isinstance(journal, KeepsSnapshots):
            return None
        try:
            data = await journal.snapshot_data(ref)
        except StoreError as exc:
            log.warning("the snapshot of %s cannot be read: %s", node.id, exc)
            return None
        fresh, previous = await self._swap()
        try:
            if not isinstance(fresh, SnapshotsNamespace):
                raise SandboxError("this sandbox cannot load namespace snapshots")
            await fresh.restore(data)
        except SandboxError as exc:
            log.warning("the snapshot of %s could not be loaded: %s", node.id, exc)
            self._adopt(previous)
            await fresh.close()
            return None
        if previous is not None:
            await previous.close()
        node.detail["restored_from_snapshot"] = True
        self.restored.append(node.id)
        await self._restarted(
            f"{node.label or node.id} ({node.id}) printed something other than its journaled "
            "output on replay; its variables were restored from the snapshot taken after it "
            "and the run goes on with the journaled output"
        )
        return replace(outcome, duration_s=result.duration_s)

    def note(self) -> str | None:
        """What the root must be told once: which earlier outputs changed on resume."""
        if not self._changes:
            return None
        lines, self._changes = self._changes, []
        return "\n".join(
            [
                "Note: this run was resumed, and these earlier cells printed something "
                "different when they were run again (their variables now hold the new "
                "values; later outputs follow from them):",
                *lines,
            ]
        )
