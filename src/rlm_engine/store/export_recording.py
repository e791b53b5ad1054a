"""What an export needs from the store, gathered once: the run, its events, the root's
turns and cells in order, and the recorded sub-call results of every root cell.

Only composes the public `Store` methods, so it works on any backend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rlm_engine.store.errors import RunNotFoundError
from rlm_engine.store.export_tree import ROOT_ID, parent_of, path_key
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import Cell, Run, RunTree, StoredEvent

# The fences the engine runs as code (see the engine's reply parser); the rest of a root
# turn is the model's reasoning.
_CODE_FENCE = re.compile(r"```(?:repl|python|py|python3)[ \t]*\n.*?```", re.DOTALL)
MISSING_RESULT = "the run recorded no result for this call (it failed or was in flight)"


@dataclass(frozen=True, slots=True)
class SubResult:
    """One sub-call a cell made, as the cell saw it: a value, or an error it raised."""

    node_id: str
    kind: str
    ok: bool
    value: str = ""
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        if self.ok:
            return {"node_id": self.node_id, "kind": self.kind, "ok": True, "value": self.value}
        return {"node_id": self.node_id, "kind": self.kind, "ok": False, "error": self.error}


@dataclass(frozen=True, slots=True)
class RootTurn:
    """A reply of the root model; `text` is the full reply, `reasoning` the prose in it."""

    node_id: str
    number: int
    """1 for the first reply; the forced final turn after the last iteration counts too."""
    text: str

    @property
    def reasoning(self) -> str:
        return reasoning_text(self.text)


@dataclass(frozen=True, slots=True)
class RootCell:
    """A cell of the root's REPL with the sub-call results it received, in call order."""

    cell: Cell
    results: tuple[SubResult, ...]

    @property
    def replayable(self) -> bool:
        """True if the cell ran to an end a notebook can reproduce (not blocked, killed,
        timed out, or cut off by a crash)."""
        if self.cell.status not in ("completed", "failed"):
            return False
        return self.cell.meta.get("cell_status", "ok") in ("ok", "error")


Step = RootTurn | RootCell


@dataclass(frozen=True, slots=True)
class Recording:
    """A run ready to export."""

    run: Run
    tree: RunTree
    events: tuple[StoredEvent, ...]
    steps: tuple[Step, ...]

    @property
    def cells(self) -> tuple[Cell, ...]:
        return self.tree.cells


def reasoning_text(reply: str) -> str:
    """A root reply without its code blocks: the prose the model wrote around them."""
    prose = _CODE_FENCE.sub("", reply)
    return re.sub(r"\n{3,}", "\n\n", prose).strip()


class _SubCalls:
    """Everything known of a run's sub-calls, indexed once for all of its cells."""

    def __init__(self, store: Store, tree: RunTree, events: tuple[StoredEvent, ...]) -> None:
        self._store = store
        self._run_id = tree.run.run_id
        self._nodes = {n.node_id: n for n in tree.nodes}
        # Answers of child RLMs by node id (a child's `final` event carries its node).
        self._finals = {
            e.node_id: str(e.body.get("answer", ""))
            for e in events
            if e.type == "final" and e.depth > 0
        }
        self._events: dict[str, dict[str, Any]] = {}
        for event in events:
            if event.type in ("subcall_started", "subcall_finished"):
                self._events.setdefault(event.node_id, {}).update(event.body)
        # Root cell `r/j` -> its direct children `r/j/k`, also those known only through
        # nodes further down (a child RLM's turns and cells) or through events.
        self._children: dict[str, set[str]] = {}
        ids = [*self._nodes, *(c.node_id for c in tree.cells), *self._events]
        for node_id in ids:
            parts = node_id.split("/")
            if len(parts) >= 3 and parts[0] == ROOT_ID:
                cell_id = "/".join(parts[:2])
                self._children.setdefault(cell_id, set()).add("/".join(parts[:3]))

    def of_cell(self, cell_id: str) -> tuple[SubResult, ...]:
        """The results cell `cell_id` received, in the order it made the calls."""
        children = sorted(self._children.get(cell_id, ()), key=path_key)
        results = [self._result(node_id) for node_id in children]
        return tuple(r for r in results if r is not None)

    def _result(self, node_id: str) -> SubResult | None:
        node = self._nodes.get(node_id)
        said = self._events.get(node_id, {})
        kind = node.kind if node is not None else str(said.get("kind", "rlm"))
        if kind == "tool":
            # Tools are the user's own host code, not journaled; a notebook has no stub.
            return None
        error = str(said.get("error") or MISSING_RESULT)
        if node is not None:
            call = self._store.find_model_call(self._run_id, node_id)
            if call is not None and call.status == "completed":
                return SubResult(node_id, kind, True, value=call.response)
            reason = (call.error if call is not None else None) or error
            return SubResult(node_id, kind, False, error=reason)
        if node_id in self._finals:
            return SubResult(node_id, kind, True, value=self._finals[node_id])
        return SubResult(node_id, kind, False, error=error)


def load_recording(store: Store, run_id: str) -> Recording:
    """Everything an export shows of `run_id`; raises `RunNotFoundError`."""
    tree = store.run_tree(run_id)
    if tree is None:
        raise RunNotFoundError(run_id)
    events = tuple(store.list_events(run_id))
    steps: list[tuple[str, Step]] = []
    turns = sorted(
        (n for n in tree.children(ROOT_ID) if n.kind == "root_turn"),
        key=lambda n: path_key(n.node_id),
    )
    for number, node in enumerate(turns, start=1):
        call = store.find_model_call(run_id, node.node_id)
        text = call.response if call is not None else ""
        steps.append((node.node_id, RootTurn(node.node_id, number, text)))
    sub_calls = _SubCalls(store, tree, events)
    for cell in tree.cells:
        if parent_of(cell.node_id) == ROOT_ID:
            steps.append((cell.node_id, RootCell(cell, sub_calls.of_cell(cell.node_id))))
    steps.sort(key=lambda item: path_key(item[0]))
    return Recording(tree.run, tree, events, tuple(step for _, step in steps))
