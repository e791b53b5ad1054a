"""Plain frozen records the store takes and returns. No database types leak past the store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rlm_engine.events import Event


RunStatus = Literal["queued", "running", "completed", "failed", "interrupted", "cancelled"]
NodeKind = Literal["root_turn", "llm", "rlm", "tool", "digest", "capsule", "cell"]
NodeStatus = Literal["running", "completed", "failed"]
CellStatus = Literal["pending", "executing", "completed", "failed", "blocked"]
ScopeKind = Literal["session", "user"]

# The tenant of everything recorded without one (the CLI, stores made before tenants).
LOCAL_TENANT = "local"

TERMINAL_RUN_STATUSES: frozenset[RunStatus] = frozenset({"completed", "failed", "cancelled"})
# What a resume may claim; a failed run only if it failed for a reason that can pass
# (`run_rules.resume_refusal`). A queued run is never resumed: the queue starts it.
RESUMABLE_STATUSES: tuple[RunStatus, ...] = ("interrupted", "failed", "cancelled")
TERMINAL_NODE_STATUSES: frozenset[NodeStatus] = frozenset({"completed", "failed"})
TERMINAL_CELL_STATUSES: frozenset[CellStatus] = frozenset({"completed", "failed", "blocked"})
# Node kinds whose result comes from a model: these are what `find_model_call` returns.
MODEL_CALL_KINDS: frozenset[NodeKind] = frozenset({"root_turn", "llm", "digest", "capsule"})


def _json_map() -> dict[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one model call."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class RunTotals:
    """What a run consumed, as the engine counted it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    sub_calls: int = 0
    iterations: int = 0
    from_journal: bool = False
    """True when summed from the run's journaled model calls (a run that did not finish
    normally records none of its own): unfinished calls are not in them."""


@dataclass(frozen=True, slots=True)
class NewRun:
    """Everything needed to open a run; `settings` must be JSON-serialisable."""

    run_id: str
    question: str
    model: str = ""
    sub_model: str = ""
    settings: Mapping[str, Any] = field(default_factory=_json_map)
    session: str | None = None
    context_hash: str | None = None
    created_at: float | None = None
    engine_version: str | None = None
    settings_version: int | None = None
    tenant: str = LOCAL_TENANT
    user: str | None = None
    """Who in the tenant asked for it (its user memory is theirs on every attempt)."""
    queued: bool = False
    """True: recorded as "queued", with no owner and no heartbeat, for `claim_next`."""
    auto_resume: bool = False
    """The queue resumes it by itself once its process is gone (`claim_next`)."""


@dataclass(frozen=True, slots=True)
class Run:
    """One run as stored. `owner_*` name the process that runs (or last ran) it.

    `failure_kind` says why a failed run failed (`run_rules.FailureKind`), `last_error` what
    stopped the last resume attempt that left the run as it was; `engine_version` and
    `settings_version` what recorded it (None: recorded before they were kept)."""

    run_id: str
    session: str | None
    question: str
    model: str
    sub_model: str
    settings: dict[str, Any]
    status: RunStatus
    stop_reason: str | None
    detail: str | None
    answer: str | None
    totals: RunTotals
    context_hash: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    heartbeat_at: float | None
    owner_host: str | None
    owner_pid: int | None
    attempt: int
    last_event_seq: int
    engine_version: str | None = None
    settings_version: int | None = None
    failure_kind: str | None = None
    last_error: str | None = None
    tenant: str = LOCAL_TENANT
    user: str | None = None
    auto_resume: bool = False
    cancel_requested: bool = False
    """Someone asked to cancel it while it ran: its owner stops it at its next heartbeat."""


@dataclass(frozen=True, slots=True)
class NodeStart:
    """A call-tree node that starts now (a child RLM, a tool call, a model call in flight)."""

    run_id: str
    node_id: str
    kind: NodeKind
    parent_id: str | None = None
    model: str | None = None
    request_hash: str | None = None
    request: str | None = None
    meta: Mapping[str, Any] = field(default_factory=_json_map)


@dataclass(frozen=True, slots=True)
class Node:
    """A call-tree node without its (possibly large) request and response texts."""

    run_id: str
    node_id: str
    parent_id: str | None
    kind: NodeKind
    model: str | None
    status: NodeStatus
    usage: Usage
    cost_usd: float | None
    latency_s: float | None
    request_hash: str | None
    response_chars: int | None
    error: str | None
    meta: dict[str, Any]
    started_at: float
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class ModelCall:
    """A model call's request and outcome: what is journaled and what a resume gets back.

    `status="failed"` journals a call whose failure the engine handled (e.g. reported to the
    REPL), so a replay reproduces the failure instead of calling the model again.
    """

    run_id: str
    node_id: str
    kind: NodeKind
    request_hash: str
    response: str
    parent_id: str | None = None
    model: str | None = None
    request: str | None = None
    status: Literal["completed", "failed"] = "completed"
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    latency_s: float | None = None
    meta: Mapping[str, Any] = field(default_factory=_json_map)


@dataclass(frozen=True, slots=True)
class CellKey:
    """Identifies one cell: the `cell_index`-th code block of `iteration` in REPL `node_id`."""

    run_id: str
    node_id: str
    iteration: int
    cell_index: int

    @property
    def artifact_id(self) -> str:
        """Stable artifact id, the same on every replay of the run."""
        return f"{self.run_id}:{self.node_id}:{self.iteration}:{self.cell_index}"


@dataclass(frozen=True, slots=True)
class CellStart:
    """A cell about to run (or registered as pending)."""

    run_id: str
    node_id: str
    iteration: int
    cell_index: int
    code: str
    instruction: str | None = None
    meta: Mapping[str, Any] = field(default_factory=_json_map)
    """Kept with the cell; what `finish_cell` adds is merged into it."""

    @property
    def key(self) -> CellKey:
        return CellKey(self.run_id, self.node_id, self.iteration, self.cell_index)


@dataclass(frozen=True, slots=True)
class Cell:
    """One entry of the artifact registry: a cell's code, output and hashes."""

    artifact_id: str
    run_id: str
    node_id: str
    iteration: int
    cell_index: int
    instruction: str | None
    code: str
    code_hash: str
    status: CellStatus
    output: str | None
    output_hash: str | None
    output_chars: int | None
    error: str | None
    meta: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def key(self) -> CellKey:
        return CellKey(self.run_id, self.node_id, self.iteration, self.cell_index)


@dataclass(frozen=True, slots=True)
class CellFinish:
    """A cell's outcome, as `finish_cell` takes it (for `write_journal`)."""

    key: CellKey
    status: Literal["completed", "failed", "blocked"]
    output: str = ""
    error: str | None = None
    meta: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class JournalWrites:
    """Journal writes and events that `write_journal` commits in one transaction.

    Applied in this order: model calls, cell starts, cell finishes, events. A write that
    depends on another (a cell's finish on its start) must come in a later batch.
    """

    calls: Sequence[ModelCall] = ()
    cell_starts: Sequence[CellStart] = ()
    cell_finishes: Sequence[CellFinish] = ()
    events: Sequence[Event] = ()

    def __len__(self) -> int:
        return len(self.calls) + len(self.cell_starts) + len(self.cell_finishes) + len(self.events)


@dataclass(frozen=True, slots=True)
class JournalSnapshot:
    """What a resume needs of a run's journal, read at once: its finished model calls
    ("completed" or "failed"; any node kind) and all its cells."""

    calls: Mapping[str, ModelCall]
    """By node id."""
    cells: Sequence[Cell]
    """In execution order within each REPL node (iteration, cell index)."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as appended, with the per-run sequence number the store gave it."""

    run_id: str
    seq: int
    type: str
    node_id: str
    depth: int
    ts: float
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Session:
    """A named conversation; `version` grows by one on every update."""

    name: str
    version: int
    data: dict[str, Any]
    created_at: float
    updated_at: float
    tenant: str = LOCAL_TENANT


@dataclass(frozen=True, slots=True)
class MemoryScope:
    """Whose memory: one session's, or one user's across sessions."""

    kind: ScopeKind
    name: str

    @classmethod
    def session(cls, name: str) -> MemoryScope:
        return cls("session", name)

    @classmethod
    def user(cls, name: str) -> MemoryScope:
        return cls("user", name)


@dataclass(frozen=True, slots=True)
class MemoryItem:
    """One remembered value (any JSON value)."""

    scope: MemoryScope
    key: str
    value: Any
    updated_at: float


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A model reply kept for identical later calls, by the key `lm.cache.cache_key` gives.

    Only what a cache hit returns is kept: a hit costs nothing, so usage is not."""

    key: str
    model: str
    text: str
    finish_reason: str | None = None
    provider: str = ""
    created_at: float = 0.0
    hits: int = 0


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Persistent response-cache entries and hits for one model."""

    model: str
    entries: int
    hits: int


@dataclass(frozen=True, slots=True)
class UsageRow:
    """What one tenant's model calls of one UTC day, model and session consumed.

    `cost_usd` sums the known costs only; `unpriced_calls` says how many calls had none."""

    day: str
    """"YYYY-MM-DD" (UTC) of the calls' start."""
    model: str
    session: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float
    unpriced_calls: int


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key of a tenant; only the sha256 of its secret is kept."""

    key_id: str
    tenant: str
    name: str
    secret_hash: str
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class ContextRecord:
    """A loaded context, identified by the sha256 of its content."""

    content_hash: str
    size: int
    kind: str
    path: str | None = None
    blob_ref: str | None = None
    meta: Mapping[str, Any] = field(default_factory=_json_map)
    created_at: float | None = None


@dataclass(frozen=True, slots=True)
class RunTree:
    """A run with its call-tree nodes and cells, in the order they started."""

    run: Run
    nodes: tuple[Node, ...]
    cells: tuple[Cell, ...]

    def children(self, parent_id: str | None) -> tuple[Node, ...]:
        """Nodes directly under `parent_id` (`None`: the top-level nodes)."""
        return tuple(n for n in self.nodes if n.parent_id == parent_id)

    def cells_of(self, node_id: str) -> tuple[Cell, ...]:
        """Cells run by the REPL of `node_id`, in execution order."""
        return tuple(
            sorted(
                (c for c in self.cells if c.node_id == node_id),
                key=lambda c: (c.iteration, c.cell_index),
            )
        )
