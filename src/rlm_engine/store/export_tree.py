"""A stored run's call tree nested by node path: what `rlm runs tree` prints.

The journal keeps model calls as nodes and cells in their own table; nodes it has no row
for (the run itself, child RLMs, tool calls) are filled in from their ids and from the
run's `subcall_*` events, so the tree shows every step, not only the journaled ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rlm_engine.store.records import Cell, Node, RunTree, StoredEvent

ROOT_ID = "r"
"""Node id of a run's root RLM; root turns and root cells are `r/<i>`."""


def parent_of(node_id: str) -> str | None:
    """`r/3/1` -> `r/3`; None for the root."""
    return node_id.rsplit("/", 1)[0] if "/" in node_id else None


def path_key(node_id: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders `r/2` before `r/10` (node ids number children in order)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in node_id.split("/"))


def _children_list() -> list[TreeItem]:
    return []


def _any_map() -> dict[str, Any]:
    return {}


@dataclass
class TreeItem:
    """One step of a run: a model call, a cell, a child RLM or a tool call."""

    id: str
    kind: str
    status: str | None = None
    label: str = ""
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    latency_s: float | None = None
    extra: dict[str, Any] = field(default_factory=_any_map)
    children: list[TreeItem] = field(default_factory=_children_list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "label": self.label,
            "model": self.model,
            "usage": {
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "cached_tokens": self.cached_tokens,
            },
            "cost_usd": self.cost_usd,
            "latency_s": self.latency_s,
            **self.extra,
            "children": [child.to_dict() for child in self.children],
        }


def _from_node(node: Node) -> TreeItem:
    return TreeItem(
        id=node.node_id,
        kind=node.kind,
        status=node.status,
        label=node.kind.replace("_", " "),
        model=node.model,
        input_tokens=node.usage.input_tokens,
        output_tokens=node.usage.output_tokens,
        cached_tokens=node.usage.cached_tokens,
        cost_usd=node.cost_usd,
        latency_s=node.latency_s,
        extra={"response_chars": node.response_chars, "error": node.error},
    )


def _from_cell(cell: Cell) -> TreeItem:
    duration = None
    if cell.started_at is not None and cell.finished_at is not None:
        duration = max(cell.finished_at - cell.started_at, 0.0)
    return TreeItem(
        id=cell.node_id,
        kind="cell",
        status=cell.status,
        label=f"cell {cell.iteration}.{cell.cell_index + 1}",
        latency_s=duration,
        extra={
            "artifact_id": cell.artifact_id,
            "iteration": cell.iteration,
            "cell_index": cell.cell_index,
            "code": cell.code,
            "output_chars": cell.output_chars,
            "error": cell.error,
        },
    )


def _subcall_facts(events: Sequence[StoredEvent]) -> dict[str, tuple[str, str | None]]:
    """node id -> (kind, status) of every sub-call the events announce."""
    facts: dict[str, tuple[str, str | None]] = {}
    for event in events:
        if event.type == "subcall_started":
            facts[event.node_id] = (str(event.body.get("kind", "rlm")), "running")
        elif event.type == "subcall_finished" and event.node_id in facts:
            ok = bool(event.body.get("ok"))
            facts[event.node_id] = (facts[event.node_id][0], "completed" if ok else "failed")
    return facts


def build_tree(tree: RunTree, events: Sequence[StoredEvent] = ()) -> TreeItem:
    """Nest a run's nodes and cells by path under a `run` item for the root RLM."""
    run = tree.run
    totals = run.totals
    root = TreeItem(
        id=ROOT_ID,
        kind="run",
        status=run.status,
        label=run.question[:80],
        model=run.model,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        cached_tokens=totals.cached_tokens,
        cost_usd=totals.cost_usd,
        extra={"run_id": run.run_id, "stop_reason": run.stop_reason},
    )
    items: dict[str, TreeItem] = {ROOT_ID: root}
    for node in tree.nodes:
        items[node.node_id] = _from_node(node)
    for cell in tree.cells:
        items[cell.node_id] = _from_cell(cell)
    facts = _subcall_facts(events)
    for node_id, (kind, status) in facts.items():
        if node_id not in items:
            items[node_id] = TreeItem(id=node_id, kind=kind, status=status, label=f"{kind} call")
    # Fill in ancestors the journal has no row for: a child RLM is known only through the
    # turns and cells under it.
    for node_id in list(items):
        parent = parent_of(node_id)
        while parent is not None and parent not in items:
            kind, status = facts.get(parent, ("rlm", None))
            items[parent] = TreeItem(id=parent, kind=kind, status=status, label=f"{kind} call")
            parent = parent_of(parent)
    for node_id in sorted(items, key=path_key):
        parent = parent_of(node_id)
        if parent is not None:
            items[parent].children.append(items[node_id])
    return root


def render_tree(root: TreeItem) -> list[str]:
    """Indented lines: id, kind, status, model, tokens, cost and time of every step."""
    lines: list[str] = []

    def visit(item: TreeItem, depth: int) -> None:
        parts = [f"{'  ' * depth}{item.id}", item.label or item.kind, item.status or "-"]
        if item.model:
            parts.append(item.model)
        if item.input_tokens or item.output_tokens:
            parts.append(f"{item.input_tokens:,} in / {item.output_tokens:,} out tokens")
        if item.cost_usd is not None:
            parts.append(f"${item.cost_usd:.4f}")
        if item.latency_s is not None:
            parts.append(f"{item.latency_s:.2f}s")
        chars = item.extra.get("output_chars")
        if isinstance(chars, int):
            parts.append(f"{chars:,} output chars")
        lines.append("  ".join(parts))
        for child in item.children:
            visit(child, depth + 1)

    visit(root, 0)
    return lines
