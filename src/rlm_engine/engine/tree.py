"""The call tree of a run: every root turn, cell, sub-call, digest and child RLM."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rlm_engine.types import Usage

NodeKind = Literal["run", "root_turn", "cell", "llm", "rlm", "tool", "digest", "capsule"]


@dataclass
class CallNode:
    """One node of the tree. Mutable while the run builds it; read-only afterwards."""

    id: str
    kind: NodeKind
    label: str = ""
    model: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    latency_s: float = 0.0
    status: str = "ok"
    # Out of the repr: a whole tree of thousands of nodes is costly to print by accident.
    detail: dict[str, Any] = field(default_factory=dict[str, Any], repr=False)
    children: list[CallNode] = field(default_factory=list["CallNode"], repr=False)

    def add(self, kind: NodeKind, label: str = "", **detail: Any) -> CallNode:
        child = CallNode(id=f"{self.id}/{len(self.children)}", kind=kind, label=label)
        child.detail.update(detail)
        self.children.append(child)
        return child

    def walk(self) -> list[CallNode]:
        nodes: list[CallNode] = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "model": self.model,
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
                "cached_tokens": self.usage.cached_tokens,
            },
            "cost_usd": self.cost_usd,
            "latency_s": round(self.latency_s, 4),
            "status": self.status,
            "detail": self.detail,
            "children": [c.to_dict() for c in self.children],
        }
