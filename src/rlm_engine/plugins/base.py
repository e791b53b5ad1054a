"""The plugin interface: ordered async hooks around runs, model calls and cells.

A plugin subclasses ``Plugin`` and overrides the hooks it needs; the others do nothing.
``before_cell`` may allow a cell, amend its code, or block it with a structured reason
that goes back to the root model as the cell's result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rlm_engine.events import CallRole, Event
from rlm_engine.types import Completion, Message

if TYPE_CHECKING:
    from rlm_engine.engine.result import RunResult
    from rlm_engine.sandbox.base import CellResult

Emit = Callable[[Event], Awaitable[None]]
ModelRole = CallRole


async def _drop(event: Event) -> None:
    return None


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    question: str
    model: str
    sub_model: str
    emit: Emit = field(default=_drop, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ModelCallInfo:
    run_id: str
    node_id: str
    depth: int
    role: ModelRole
    model: str
    messages: tuple[Message, ...]
    emit: Emit = field(default=_drop, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class CellInfo:
    run_id: str
    node_id: str
    depth: int
    iteration: int
    cell_index: int
    code: str
    instruction: str | None
    emit: Emit = field(default=_drop, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Allow:
    """Run the cell as it is."""


@dataclass(frozen=True, slots=True)
class Amend:
    """Run this code instead (later plugins see the amended code)."""

    code: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Block:
    """Do not run the cell; ``reason`` and ``details`` go back to the root as its result."""

    reason: str
    category: str = "policy"
    severity: int = 10
    details: Sequence[str] = ()


CellDecision = Allow | Amend | Block


class Plugin:
    """Base class: every hook is a no-op. ``required`` plugins abort the run if they fail;
    any other plugin's failure is reported as a ``plugin_failed`` event and skipped."""

    name: str = "plugin"
    required: bool = False

    async def before_run(self, run: RunInfo) -> None:
        return None

    async def before_model_call(self, call: ModelCallInfo) -> Sequence[Message] | None:
        """Return replacement messages to amend the request, or ``None``."""
        return None

    async def after_model_call(self, call: ModelCallInfo, completion: Completion) -> None:
        return None

    async def before_cell(self, cell: CellInfo) -> CellDecision | None:
        """``None`` means allow."""
        return None

    async def after_cell(self, cell: CellInfo, result: CellResult) -> None:
        return None

    async def on_event(self, event: Event) -> None:
        return None

    async def after_run(self, run: RunInfo, result: RunResult) -> None:
        return None
