"""What a run returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rlm_engine.engine.tree import CallNode
from rlm_engine.errors import ErrorCause
from rlm_engine.types import Usage

StopReason = Literal[
    "final", "submitted", "max_iterations", "budget", "stagnation", "timeout", "error", "cancelled"
]
"""The engine never returns ``cancelled``: a cancelled run raises, after its ``RunFinished``
says so."""


@dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of one run.

    ``cost_usd`` is ``None`` when any call in the run had an unknown price;
    ``cost_known_usd`` is then the sum of the calls whose price is known.
    """

    answer: str
    run_id: str
    stop_reason: StopReason
    iterations: int
    usage: Usage
    cost_usd: float | None
    duration_s: float
    tree: CallNode
    fields: Mapping[str, Any] | None = None
    stop_detail: str = ""
    usage_by_model: Mapping[str, Usage] = field(default_factory=dict[str, Usage])
    cost_known_usd: float = 0.0
    sub_calls: int = 0
    blocked_cells: int = 0
    cause: ErrorCause | None = None
    """Why an ``error`` (or ``budget``) stop happened: the error's class, kind and remedy."""

    def to_dict(self) -> dict[str, Any]:
        def usage_dict(u: Usage) -> dict[str, int]:
            return {
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "cached_tokens": u.cached_tokens,
                "requests": u.requests,
            }

        return {
            "answer": self.answer,
            "fields": dict(self.fields) if self.fields is not None else None,
            "run_id": self.run_id,
            "stop_reason": self.stop_reason,
            "stop_detail": self.stop_detail,
            "iterations": self.iterations,
            "usage": usage_dict(self.usage),
            "usage_by_model": {m: usage_dict(u) for m, u in self.usage_by_model.items()},
            "cost_usd": self.cost_usd,
            "cost_known_usd": self.cost_known_usd,
            "sub_calls": self.sub_calls,
            "blocked_cells": self.blocked_cells,
            "cause": self.cause.to_dict() if self.cause is not None else None,
            "duration_s": round(self.duration_s, 3),
            "tree": self.tree.to_dict(),
        }
