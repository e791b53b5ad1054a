"""The sandbox interface: a persistent REPL that runs untrusted cells.

"Your code raised" (``CellResult.status == "error"``) is kept apart from "the sandbox
died" (``SandboxDied``, or a ``killed`` result after a hard kill).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

CellStatus = Literal["ok", "error", "timeout", "killed"]

# Called by the sandbox when code in the REPL reaches the host (llm_query, tools, ...).
# ``method`` names the helper; the return value must be JSON-serialisable. An exception
# raised here is re-raised inside the cell as a RuntimeError carrying its message.
HostHandler = Callable[[str, Mapping[str, Any]], Awaitable[Any]]

# What a user may pass as a context: text, a path (file or directory), several of
# either, or JSON-like data.
ContextValue = str | Path | Sequence[str | Path] | Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class FinalValue:
    """What ``FINAL``/``FINAL_VAR``/``SUBMIT`` set during a cell."""

    kind: Literal["final", "submit"]
    answer: str = ""
    fields: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CellResult:
    status: CellStatus
    output: str
    """Captured stdout and stderr, already capped by the worker."""
    error: str | None = None
    """Traceback or a typed message (timeout, killed) when status is not ``ok``."""
    final: FinalValue | None = None
    duration_s: float = 0.0
    dropped_chars: int = 0
    """How many output characters were discarded above the hard cap."""
    clock_reads: tuple[int, ...] = ()
    """A journaled cell's reads of the precise clocks, in ns after its start (to replay)."""


@dataclass(frozen=True, slots=True)
class CellClock:
    """What makes a journaled cell replay the same (``sandbox.worker_clock``): its wall
    clock's start, the seed of its randomness, and on replay the precise-clock reads its
    first run recorded."""

    start: float
    entropy: str | None = None
    reads: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class ContextMeta:
    """What the root model is allowed to know about the context: its shape, never its body."""

    type: str
    total_chars: int
    chunk_lengths: tuple[int, ...] = ()
    preview: str = ""
    files: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict[str, Any])


class Sandbox(Protocol):
    """A persistent REPL in its own process. One per RLM (and per child RLM)."""

    @property
    def alive(self) -> bool: ...

    async def start(self) -> None: ...

    async def load_context(self, value: ContextValue) -> ContextMeta:
        """Make ``value`` available as ``context`` in the REPL without piping its body."""
        ...

    async def execute(self, code: str, *, timeout_s: float) -> CellResult:
        """Run one cell. A soft interrupt at ``timeout_s`` keeps the state; if the cell
        does not stop, a hard kill follows and the result is ``killed``."""
        ...

    async def list_vars(self) -> dict[str, str]:
        """Names and short type descriptions of the user variables in the REPL."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class DescribesContext(Protocol):
    """A sandbox that can say, on the host and before it has started, what
    ``load_context`` will return for a value; the engine then starts it while the first
    root call is in flight."""

    def describe_context(self, value: ContextValue) -> ContextMeta | None:
        """The ``ContextMeta`` ``load_context(value)`` will return (blocking, no worker
        needed), or ``None`` when only the started sandbox can tell."""
        ...


@runtime_checkable
class StartsClock(Protocol):
    """A sandbox that starts the REPL's replay-stable clock (``worker_clock``) together
    with the cell, in one round trip instead of a setup cell and the cell."""

    async def execute_at(
        self, code: str, *, clock: float | CellClock, timeout_s: float
    ) -> CellResult:
        """``execute(code)`` with the REPL's clock started at ``clock`` first (a bare float
        is the wall clock's start alone)."""
        ...


@dataclass(frozen=True, slots=True)
class NamespaceSnapshot:
    """A pickle of the REPL's variables, made inside the sandbox. Opaque bytes to the
    host: it stores them and hands them to a new sandbox, never unpickles them."""

    data: bytes | None
    """``None`` when the namespace is unchanged since the last snapshot or none was kept."""
    unchanged: bool = False
    skipped: tuple[str, ...] = ()
    """Variables left out because they do not pickle (open files, generators, ...)."""
    reason: str | None = None
    """Why no snapshot was kept (over the size cap, not supported by the worker)."""


@runtime_checkable
class SnapshotsNamespace(Protocol):
    """A sandbox that can snapshot its namespace, and restore one into a fresh REPL."""

    async def snapshot(self, *, max_bytes: int) -> NamespaceSnapshot:
        """Pickle the user's variables inside the sandbox (at most ``max_bytes``)."""
        ...

    async def restore(self, data: bytes) -> None:
        """Load a snapshot taken by ``snapshot`` (in another sandbox of the same run)."""
        ...


class SandboxFactory(Protocol):
    def __call__(self, handler: HostHandler, *, reserved_tools: Sequence[str] = ()) -> Sandbox: ...
