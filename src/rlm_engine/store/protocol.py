"""The `Store` interface the engine, the CLI and the server program against.

Methods are synchronous and thread-safe; async code calls them with `asyncio.to_thread`
(SQLAlchemy's typed sync API needs no async drivers, and each call is one short transaction).
Every write method commits before it returns: what it recorded survives a crash.

Journal protocol for crash-safe runs (node ids and cell positions must be deterministic, so
a resumed run asks for the same keys as the crashed one):

- many writes at once: `write_journal(JournalWrites(...))` commits a batch in one
  transaction; `journal_writer.submit(...)` hands writes to the store's group-commit thread,
  which batches what concurrent callers submit. `load_journal(run_id)` reads what a resume
  needs in one go.
- model call (root turn, `llm_query`, digest, capsule; also child RLM and tool results):
  `find_model_call(run_id, node_id)`; if it returns a record, use it (compare its
  `request_hash`: a different one means the replay diverged) and do NOT call the model.
  Otherwise optionally `start_node(...)` (shows the call in flight), make the call, then
  `record_model_call(...)` before acting on the result. A call in flight at a crash has no
  record and is made again on resume; a journaled one never is.
- cell: `begin_cell(...)` (status "executing") before running it, `finish_cell(...)` with the
  full output before the next step. On resume, completed cells come from `list_cells` and are
  replayed in a fresh sandbox (compare `code_hash` / `output_hash`); a cell still
  "executing" is the one a crash interrupted: `begin_cell` it again and run it.
- runs: `create_run` on start; `heartbeat` periodically (other hosts judge liveness by it);
  `finish_run` at the end. `mark_interrupted_runs()` turns runs whose process is gone into
  "interrupted"; `claim_run(run_id)` makes this process the owner of such a run (or of one
  that failed for a reason that can pass) for resume, `abandon_attempt` hands it back as it
  was if the attempt fails. `run_rules` has the statuses and transitions.
- the queue: `create_run(NewRun(..., queued=True))` records a run for later; processes
  polling `claim_next()` (or `claim_batch(n)`, several in one transaction) take queued
  runs, and interrupted `auto_resume` ones, each exactly once. `request_cancel` cancels a
  queued run at once or flags a running one, whose owner checks `Run.cancel_requested` at
  its heartbeat and finishes it as "cancelled".
- tenants: runs and sessions belong to one (`"local"` unless told); listings filter by it,
  `usage_rows` and `tenant_cost_since` sum its calls, API keys map secrets to it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from rlm_engine.store.blobs import BlobStore
from rlm_engine.store.group_commit import GroupCommitWriter
from rlm_engine.store.records import (
    LOCAL_TENANT,
    RESUMABLE_STATUSES,
    ApiKey,
    CachedResponse,
    CacheStats,
    Cell,
    CellKey,
    CellStart,
    ContextRecord,
    JournalSnapshot,
    JournalWrites,
    MemoryItem,
    MemoryScope,
    ModelCall,
    NewRun,
    Node,
    NodeStart,
    Run,
    RunStatus,
    RunTotals,
    RunTree,
    Session,
    StoredEvent,
    Usage,
    UsageRow,
)

if TYPE_CHECKING:
    from rlm_engine.events import Event


@runtime_checkable
class Store(Protocol):
    """Durable runs, call trees, cells, events, sessions, memory and contexts."""

    @property
    def blobs(self) -> BlobStore:
        """Where long texts and contexts are kept, addressed by sha256."""
        ...

    def close(self) -> None:
        """Release connections. The store must not be used afterwards."""
        ...

    # -- runs ---------------------------------------------------------------------------

    def create_run(self, new: NewRun) -> Run:
        """Open a run as "running", owned by this process (or as "queued", unowned, with
        `new.queued`); creates its session (of `new.tenant`) if needed.

        Raises `JournalConflictError` if the run id exists, or if the session belongs to
        another tenant.
        """
        ...

    def get_run(self, run_id: str) -> Run | None:
        """The run, or None."""
        ...

    def list_runs(
        self,
        limit: int = 50,
        *,
        status: RunStatus | None = None,
        session: str | None = None,
        tenant: str | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[Run]:
        """Runs newest first by (created_at, run_id), optionally only those with `status` /
        in `session` / of `tenant`; `before` is a cursor: only runs strictly older than that
        (created_at, run_id) pair (the last run of the previous page)."""
        ...

    def count_runs(self, *, tenant: str | None, statuses: Collection[RunStatus]) -> int:
        """How many runs (of `tenant`; None: of every tenant) are in one of `statuses`."""
        ...

    def update_run_totals(self, run_id: str, totals: RunTotals) -> Run:
        """Record progress (tokens, cost, calls, iterations so far); also a heartbeat."""
        ...

    def finish_run(
        self,
        run_id: str,
        *,
        status: RunStatus,
        stop_reason: str,
        answer: str | None = None,
        detail: str | None = None,
        totals: RunTotals | None = None,
        failure_kind: str | None = None,
    ) -> Run:
        """Put a run in a terminal state ("completed" / "failed", or "interrupted");
        `failure_kind` (`run_rules.FailureKind`) says why a failed run failed and decides
        whether it can be resumed. Completing a run clears its `last_error`."""
        ...

    def abandon_attempt(self, run_id: str, *, previous: Run, error: str) -> Run:
        """Put a claimed run back as `previous` (the run before `claim_run`: its status, stop
        reason, detail and failure kind), with `error` as its `last_error`: a resume attempt
        that failed leaves the run as resumable as it was."""
        ...

    def heartbeat(self, run_id: str) -> None:
        """Say this run's owner is alive (call every few seconds from a long run)."""
        ...

    def claim_next(
        self, *, stale_after_s: float = 15.0, tenants_full: Collection[str] = ()
    ) -> Run | None:
        """Take the next run for this process to execute, or None if there is none.

        First `mark_interrupted_runs(stale_after_s=...)`; then atomically claims the oldest
        run that is "queued", or "interrupted" with `auto_resume`, with no cancel requested
        and not of a tenant in `tenants_full`: it becomes "running", owned by this process
        (heartbeat now), attempt + 1 if it was interrupted. Of concurrent callers (threads
        or processes) exactly one gets a given run."""
        ...

    def claim_batch(
        self, limit: int, *, stale_after_s: float = 15.0, tenant_limit: int | None = None
    ) -> list[Run]:
        """Take up to `limit` runs for this process, oldest first, in one transaction: as
        `claim_next` (one `mark_interrupted_runs` first; each run exactly once among
        concurrent callers), but no tenant gets past `tenant_limit` runs running, counting
        those already running in any process and those of this batch."""
        ...

    def count_running_by_tenant(self) -> dict[str, int]:
        """How many runs each tenant has "running" (tenants with none are left out)."""
        ...

    def request_cancel(self, run_id: str) -> Run:
        """Cancel a run: a "queued" (or "interrupted") one becomes "cancelled" at once; a
        "running" one gets `cancel_requested` (its owner stops it and finishes it as
        "cancelled"); a terminal run is returned unchanged. Raises `RunNotFoundError`."""
        ...

    def mark_interrupted_runs(self, *, stale_after_s: float = 120.0) -> list[str]:
        """Mark "running" runs whose process is gone as "interrupted" (as "cancelled" if a
        cancel was requested); return their ids. Queued runs have no owner: left alone.

        On the owner's host the process is checked directly (pid, start time, zombie);
        a run owned on another host is gone when its heartbeat is older than `stale_after_s`.
        Cheap enough to call before every listing.
        """
        ...

    def claim_run(
        self, run_id: str, *, statuses: Collection[RunStatus] = RESUMABLE_STATUSES
    ) -> Run:
        """Make this process the owner of a run for resume: status back to "running",
        `attempt` + 1, cancel request cleared. A "running" run whose owner on this host is
        dead counts as interrupted; a cancelled run may be resumed. Raises
        `RunNotFoundError` or `RunNotResumableError` (with a hint) for a completed run, a
        run failed for a permanent reason (`run_rules`), a queued run (the queue starts
        it), or one still owned by a live process: two resumers can never both win.
        """
        ...

    def delete_run(self, run_id: str) -> bool:
        """Delete a run and its nodes, cells and events. False if it did not exist."""
        ...

    def run_tree(self, run_id: str) -> RunTree | None:
        """The run with all its call-tree nodes and cells (one consistent snapshot)."""
        ...

    # -- journal: call-tree nodes -------------------------------------------------------

    def start_node(self, node: NodeStart) -> Node:
        """Record a node as in flight ("running"). Starting a node left running by a crash
        again is allowed; a finished one raises `JournalConflictError`."""
        ...

    def record_model_call(self, call: ModelCall) -> ModelCall:
        """Journal a call's request hash and outcome; returns what is journaled.

        Long requests/responses go to the blob store transparently. Idempotent: if the node
        is already journaled with the same request hash, the FIRST record stands and is
        returned; with a different request hash it raises `JournalConflictError`.
        Works for any node kind whose result a replay must inject (also "rlm", "tool").
        """
        ...

    def find_model_call(self, run_id: str, node_id: str) -> ModelCall | None:
        """The journaled outcome of a node ("completed" or "failed"), or None if the call
        never finished (not started, or in flight at a crash): then it must be made."""
        ...

    def finish_node(
        self,
        run_id: str,
        node_id: str,
        *,
        status: Literal["completed", "failed"],
        usage: Usage | None = None,
        cost_usd: float | None = None,
        latency_s: float | None = None,
        response: str | None = None,
        error: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Node:
        """Finish a node opened with `start_node` (e.g. a child RLM with its answer)."""
        ...

    def get_node(self, run_id: str, node_id: str) -> Node | None:
        """One node without its texts, or None."""
        ...

    # -- journal: many writes at once ---------------------------------------------------

    @property
    def journal_writer(self) -> GroupCommitWriter:
        """This store's group-commit writer: one thread that commits the journal writes
        (and events) handed to it by concurrent callers together, each caller's future
        resolved once its group is durable. Started on first use, stopped by `close`."""
        ...

    def write_journal(self, writes: JournalWrites) -> None:
        """Commit model calls (as `record_model_call`, nothing read back), cell starts (as
        `begin_cell`, "executing"), cell finishes (as `finish_cell`) and events (as
        `append_events`) in ONE transaction: all of them are durable, or none is and the
        error (e.g. `JournalConflictError`, `RunNotFoundError`) is raised."""
        ...

    def load_journal(self, run_id: str) -> JournalSnapshot:
        """A run's finished nodes (by node id) and its cells, read at once (for a resume,
        instead of one `find_model_call` / `list_cells` per step)."""
        ...

    # -- journal: cells (the artifact registry) -----------------------------------------

    def begin_cell(
        self, cell: CellStart, *, status: Literal["pending", "executing"] = "executing"
    ) -> Cell:
        """Register a cell's code before it runs. Beginning a cell a crash left pending or
        executing again is allowed; a finished one raises `JournalConflictError`."""
        ...

    def finish_cell(
        self,
        key: CellKey,
        *,
        status: Literal["completed", "failed", "blocked"],
        output: str = "",
        error: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Cell:
        """Record a cell's full output (hashed; long output in the blob store) and merge
        `meta` into what `begin_cell` kept. A blocked
        cell is begun as "pending" and finished as "blocked" with the reason in `error`.
        Finishing again with the same status and output is a no-op."""
        ...

    def get_cell(self, key: CellKey) -> Cell | None:
        """One cell with its output, or None."""
        ...

    def list_cells(self, run_id: str, *, node_id: str | None = None) -> list[Cell]:
        """A run's cells; for one `node_id` in execution order (iteration, cell index)."""
        ...

    # -- events -------------------------------------------------------------------------

    def append_event(self, event: Event) -> int:
        """Append an event of an existing run; returns its sequence number (0, 1, ...)."""
        ...

    def append_events(self, events: Sequence[Event]) -> list[int]:
        """Append several events in one transaction; their sequence numbers, in order."""
        ...

    def list_events(
        self, run_id: str, *, after_seq: int = -1, limit: int | None = None
    ) -> list[StoredEvent]:
        """A run's events in sequence order, from `after_seq + 1` (for tailing)."""
        ...

    # -- sessions -----------------------------------------------------------------------

    def open_session(
        self, name: str, data: Mapping[str, Any] | None = None, *, tenant: str = LOCAL_TENANT
    ) -> Session:
        """The session `name`, created (version 1, `data`, of `tenant`) if it does not
        exist. Raises `JournalConflictError` if it exists and belongs to another tenant."""
        ...

    def get_session(self, name: str) -> Session | None:
        """The session, or None."""
        ...

    def list_sessions(self, limit: int = 100, *, tenant: str | None = None) -> list[Session]:
        """Sessions (of `tenant`; None: of every tenant), most recently updated first."""
        ...

    def update_session(
        self, name: str, data: Mapping[str, Any], *, expected_version: int
    ) -> Session:
        """Replace a session's data if it is still at `expected_version`; version + 1.

        Raises `ConcurrencyError` if someone updated it since, `SessionNotFoundError`."""
        ...

    def delete_session(self, name: str) -> bool:
        """Delete a session and its session-scoped memory; its runs remain, detached."""
        ...

    # -- memory -------------------------------------------------------------------------

    def memory_get(self, scope: MemoryScope, key: str) -> MemoryItem | None:
        """A remembered value, or None."""
        ...

    def memory_set(self, scope: MemoryScope, key: str, value: Any) -> MemoryItem:
        """Remember a JSON value under `key` in `scope` (overwrites)."""
        ...

    def memory_list(self, scope: MemoryScope) -> list[MemoryItem]:
        """Everything remembered in `scope`, by key."""
        ...

    def memory_delete(self, scope: MemoryScope, key: str) -> bool:
        """Forget `key`; False if it was not set."""
        ...

    # -- contexts -----------------------------------------------------------------------

    def register_context(self, record: ContextRecord) -> ContextRecord:
        """Record a context by content hash; the first registration of a hash stands."""
        ...

    def get_context(self, content_hash: str) -> ContextRecord | None:
        """A registered context, or None."""
        ...

    def list_contexts(self) -> list[ContextRecord]:
        """Every registered context, oldest first."""
        ...

    def delete_unused_contexts(self, *, older_than_s: float) -> int:
        """Forget contexts no run refers to, registered over `older_than_s` seconds ago;
        returns how many (their blobs go with the next garbage collection)."""
        ...

    def blob_refs_in_use(self) -> set[str]:
        """Blob references held by journal rows and registered contexts."""
        ...

    # -- response cache -----------------------------------------------------------------

    def get_cached_response(self, key: str) -> CachedResponse | None:
        """The reply cached under `key` (counted as a hit), or None."""
        ...

    def put_cached_response(self, entry: CachedResponse) -> None:
        """Cache a reply; if `entry.key` is cached already, the first reply stands."""
        ...

    def response_cache_stats(self) -> list[CacheStats]:
        """Entries and hits per model, by model name."""
        ...

    def clear_response_cache(
        self, *, model: str | None = None, unused_for_s: float | None = None
    ) -> int:
        """Forget cached replies (only `model`'s, only those unused for `unused_for_s`
        seconds); returns how many."""
        ...

    # -- usage --------------------------------------------------------------------------

    def usage_rows(self, *, tenant: str, since: float | None = None) -> list[UsageRow]:
        """What the tenant's completed model calls (root turns, `llm_query`, digests,
        capsules) started since `since` used: one row per (UTC day, model, session), by
        day, model and session."""
        ...

    def tenant_cost_since(self, tenant: str, since: float) -> float:
        """The known cost (USD) of the tenant's model calls started since `since`."""
        ...

    # -- API keys -----------------------------------------------------------------------

    def add_api_key(self, key: ApiKey) -> ApiKey:
        """Record a key (its secret's hash only). Raises `JournalConflictError` if its id
        exists."""
        ...

    def get_api_key(self, key_id: str) -> ApiKey | None:
        """A key, revoked or not, or None."""
        ...

    def list_api_keys(self, *, tenant: str | None = None) -> list[ApiKey]:
        """Keys (of `tenant`; None: every tenant's), oldest first, revoked ones included."""
        ...

    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke a key (revoking again keeps the first time); False if there is no such
        key."""
        ...

    def any_api_keys(self) -> bool:
        """Whether any key was ever made, revoked ones included (then every request needs
        a valid one, also after the last key is revoked)."""
        ...
