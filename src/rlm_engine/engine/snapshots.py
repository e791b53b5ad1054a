"""Namespace snapshots of journaled cells: the second way a resume restores the REPL.

After each cell a journaled run records, the sandbox pickles the user's variables inside
itself (``sandbox.worker_snapshot``) and hands the bytes to the host, which keeps them in
the run's blob store (content-addressed, so an unchanged namespace costs nothing) and
notes the reference with the cell. When a resumed run's replay of that cell does not
reproduce its journaled output, a NEW sandbox loads the snapshot and the run goes on with
the journaled output (``engine.divergence``). The host never unpickles a snapshot.

The snapshot is taken after the cell's result is back and while the root model thinks
about it: the next cell waits until the namespace has been read, the root call does not;
the bytes are stored meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from rlm_engine.engine.journal import RecordedCell
from rlm_engine.errors import RLMError, SandboxError
from rlm_engine.sandbox.base import (
    CellResult,
    CellStatus,
    FinalValue,
    NamespaceSnapshot,
    Sandbox,
    SnapshotsNamespace,
)

if TYPE_CHECKING:
    from rlm_engine.store.records import Cell

DEFAULT_SNAPSHOT_MAX_BYTES = 64 * 1024 * 1024
"""Above this a cell's namespace is not kept (the journal says so for that cell)."""
log = logging.getLogger("rlm_engine.engine")


@runtime_checkable
class KeepsSnapshots(Protocol):
    """A journal that keeps namespace snapshots with its cells (``StoreJournal``)."""

    snapshot_max_bytes: int
    """0 turns snapshots off."""

    async def keep_snapshot(
        self, node_id: str, data: bytes | None, note: str | None, *, ref: str | None = None
    ) -> str | None:
        """Store ``data`` (or reuse ``ref``, an unchanged namespace) as the snapshot
        taken after cell ``node_id``; returns the blob reference (None: none kept)."""
        ...

    async def snapshot_data(self, ref: str) -> bytes:
        """The bytes of a kept snapshot, to hand to a new sandbox."""
        ...

    async def recorded_cell(self, node_id: str) -> RecordedCell | None: ...


# -- what the journal keeps with a cell ----------------------------------------------------

_STATUSES: tuple[CellStatus, ...] = ("ok", "error", "timeout", "killed")


def finish_meta(result: CellResult) -> dict[str, Any]:
    """What a cell's journaled outcome needs beyond its output and error: its FINAL."""
    if result.final is None:
        return {}
    final = result.final
    fields = dict(final.fields) if final.fields is not None else None
    return {"final": {"kind": final.kind, "answer": final.answer, "fields": fields}}


def _final(value: object) -> FinalValue | None:
    if not isinstance(value, dict):
        return None
    data = cast(dict[str, Any], value)
    kind, answer, fields = data.get("kind"), data.get("answer"), data.get("fields")
    if kind not in ("final", "submit") or not isinstance(answer, str):
        return None
    kept = cast(dict[str, Any], fields) if isinstance(fields, dict) else None
    return FinalValue(kind="final" if kind == "final" else "submit", answer=answer, fields=kept)


def with_stored(recorded: RecordedCell, cell: Cell) -> RecordedCell:
    """``recorded`` with the journaled outcome and snapshot of the stored ``cell``."""
    meta = cell.meta
    outcome: CellResult | None = None
    status = meta.get("cell_status")
    if recorded.output_hash is not None and status in _STATUSES:
        outcome = CellResult(
            status,
            cell.output or "",
            cell.error,
            _final(meta.get("final")),
        )
    snap = meta.get("snapshot")
    ref = note = None
    if isinstance(snap, dict):
        found = cast(dict[str, Any], snap)
        ref = found.get("ref") if isinstance(found.get("ref"), str) else None
        note = found.get("note") if isinstance(found.get("note"), str) else None
    return replace(recorded, outcome=outcome, snapshot_ref=ref, snapshot_note=note)


def snapshot_meta(ref: str | None, note: str | None) -> dict[str, Any]:
    return {"snapshot": {"ref": ref, "note": note}}


def describe_snapshot(snapshot: NamespaceSnapshot) -> str | None:
    """The note kept with a cell: why it has no snapshot, or what its snapshot left out."""
    parts: list[str] = []
    if snapshot.reason:
        parts.append(snapshot.reason)
    if snapshot.skipped:
        parts.append("these variables do not pickle: " + ", ".join(snapshot.skipped))
    return "; ".join(parts) or None


# -- taking them ------------------------------------------------------------------------


@dataclass
class _Last:
    sandbox: object
    ref: str | None


class SnapshotTaker:
    """Takes one REPL's snapshots in the background, one at a time, in cell order."""

    def __init__(self, journal: object) -> None:
        self._journal = journal if isinstance(journal, KeepsSnapshots) else None
        self._pending: asyncio.Task[None] | None = None
        self._read: asyncio.Future[None] | None = None
        """Resolved once the pending snapshot's namespace has been read (pickled)."""
        self._last: _Last | None = None

    @property
    def enabled(self) -> bool:
        return self._journal is not None and self._journal.snapshot_max_bytes > 0

    def after_cell(self, sandbox: Sandbox, node_id: str, result: CellResult) -> None:
        """Snapshot the namespace the cell ``node_id`` left, without waiting for it."""
        journal = self._journal
        if journal is None or not self.enabled or not isinstance(sandbox, SnapshotsNamespace):
            return
        if result.status == "killed" or not sandbox.alive:
            return
        previous = self._pending
        read = self._read = asyncio.get_running_loop().create_future()
        self._pending = asyncio.create_task(self._take(previous, journal, sandbox, node_id, read))

    async def _take(
        self,
        previous: asyncio.Task[None] | None,
        journal: KeepsSnapshots,
        sandbox: SnapshotsNamespace,
        node_id: str,
        read: asyncio.Future[None],
    ) -> None:
        try:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            try:
                snapshot = await sandbox.snapshot(max_bytes=journal.snapshot_max_bytes)
            except (SandboxError, RLMError) as exc:
                snapshot = NamespaceSnapshot(None, reason=f"the snapshot failed: {exc}")
        finally:
            if not read.done():
                read.set_result(None)
        same = self._last is not None and self._last.sandbox is sandbox
        ref: str | None = None
        if snapshot.unchanged:
            ref = self._last.ref if same and self._last is not None else None
            if ref is None:
                snapshot = replace(snapshot, reason="no earlier snapshot of this REPL to reuse")
        note = describe_snapshot(snapshot)
        ref = await journal.keep_snapshot(node_id, snapshot.data, note, ref=ref)
        self._last = _Last(sandbox, ref)

    async def read(self) -> None:
        """Wait until the snapshot in progress has read the namespace (before the next cell
        changes it); storing the bytes goes on meanwhile."""
        read, pending = self._read, self._pending
        if read is not None and pending is not None and not read.done():
            # (a task cancelled before it ran never resolves ``read``)
            await asyncio.wait({read, pending}, return_when=asyncio.FIRST_COMPLETED)

    async def settle(self) -> None:
        """Wait for the snapshot in progress to be kept (at the end)."""
        self._read = None
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                await pending
            except Exception as exc:  # the store or the disk failed; the journal will say so
                # A snapshot is a second line of defence: losing one must not stop the run.
                log.warning("a namespace snapshot could not be kept: %s", exc)

    async def cancel(self) -> None:
        self._read = None
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


def kept_note(recorded: RecordedCell) -> str:
    """Why a journaled cell cannot be restored from a snapshot, for error messages."""
    if recorded.outcome is None:
        return "its journaled outcome predates snapshots"
    return recorded.snapshot_note or "no snapshot was kept for it (an older run?)"


async def restore_latest(journal: object, sandbox: Sandbox, node_ids: list[str]) -> int:
    """Load into ``sandbox`` the latest snapshot kept for the cells ``node_ids`` (in the
    order they ran); returns how many of them it covers (0: none could be loaded, replay
    them all)."""
    if not isinstance(journal, KeepsSnapshots) or not isinstance(sandbox, SnapshotsNamespace):
        return 0
    for position in range(len(node_ids) - 1, -1, -1):
        recorded = await journal.recorded_cell(node_ids[position])
        ref = recorded.snapshot_ref if recorded is not None else None
        if ref is None:
            continue
        try:
            await sandbox.restore(await journal.snapshot_data(ref))
        except (RLMError, SandboxError) as exc:
            log.warning("the snapshot of %s could not be loaded: %s", node_ids[position], exc)
            return 0
        return position + 1
    return 0
