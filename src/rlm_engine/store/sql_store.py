"""`SqlStore`: the `Store` on SQLAlchemy Core (SQLite or Postgres)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from rlm_engine.store import (
    sql_cache,
    sql_events,
    sql_journal,
    sql_keys,
    sql_queue,
    sql_run_list,
    sql_runs,
    sql_sessions,
    sql_usage,
)
from rlm_engine.store.blobs import BlobStore, LocalBlobStore
from rlm_engine.store.connect import display_url
from rlm_engine.store.errors import RunNotFoundError
from rlm_engine.store.group_commit import EVENTS_SLICE, SETTLE_S, GroupCommitWriter
from rlm_engine.store.protocol import Store
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
from rlm_engine.store.sql_base import DEFAULT_INLINE_LIMIT, SqlDb
from rlm_engine.store.sql_cell_writes import write_cells_in
from rlm_engine.store.write_errors import StoreWriteError

if TYPE_CHECKING:
    from rlm_engine.events import Event


class _WriterConnection:
    """The journal writer thread's own connection (Postgres), kept across groups: no pool
    checkout and no pre-ping per group, each a round trip at which the writer thread gives
    up the GIL and may wait a switch interval (5 ms) to get it back from a busy event loop.

    A group that fails on a lost connection is retried once on a new one, unless the loss
    came at COMMIT (the group may have been committed: its callers get the error)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self._pid = os.getpid()

    def run(self, body: Callable[[Connection], None]) -> None:
        """``body`` in one transaction on this connection, committed."""
        for attempt in (1, 2):
            fresh = self._conn is None
            conn = self._connection()
            committing = False
            try:
                with conn.begin():
                    body(conn)
                    committing = True
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                self.close()
                if committing or fresh or attempt == 2:
                    raise
                continue
            return

    def _connection(self) -> Connection:
        if self._conn is not None and self._pid != os.getpid():
            self._conn = None  # a forked child's copy: the parent's session, not ours
        if self._conn is not None and self._conn.invalidated:
            self.close()
        if self._conn is None:
            self._conn = self._engine.connect()
            self._pid = os.getpid()
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            conn.close()


class SqlStore(Store):
    """The store on a migrated SQLAlchemy engine; build it with `open_store`."""

    def __init__(
        self, engine: Engine, blobs: BlobStore, *, inline_limit: int = DEFAULT_INLINE_LIMIT
    ) -> None:
        self._db = SqlDb(engine, blobs, inline_limit)
        if isinstance(blobs, LocalBlobStore):
            blobs.keep_reserve()
        self._writer: GroupCommitWriter | None = None
        self._writer_lock = threading.Lock()
        # SQLite keeps its pool (and its in-process write lock, `SqlDb.write`).
        self._writer_conn = None if engine.dialect.name == "sqlite" else _WriterConnection(engine)

    def __repr__(self) -> str:
        return f"SqlStore({display_url(str(self._db.engine.url))!r})"

    @property
    def engine(self) -> Engine:
        """The underlying engine (for tools and tests; the engine package never needs it)."""
        return self._db.engine

    @property
    def blobs(self) -> BlobStore:
        return self._db.blobs

    def close(self) -> None:
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()  # commits what is queued first
        if self._writer_conn is not None:
            self._writer_conn.close()
        self._db.engine.dispose()

    # runs

    def create_run(self, new: NewRun) -> Run:
        return sql_runs.create_run(self._db, new)

    def get_run(self, run_id: str) -> Run | None:
        return sql_runs.get_run(self._db, run_id)

    def list_runs(
        self,
        limit: int = 50,
        *,
        status: RunStatus | None = None,
        session: str | None = None,
        tenant: str | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[Run]:
        return sql_run_list.list_runs(self._db, limit, status, session, tenant, before)

    def count_runs(self, *, tenant: str | None, statuses: Collection[RunStatus]) -> int:
        return sql_run_list.count_runs(self._db, tenant, statuses)

    def update_run_totals(self, run_id: str, totals: RunTotals) -> Run:
        return sql_runs.update_totals(self._db, run_id, totals)

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
        return self._with_room(
            lambda: sql_runs.finish_run(
                self._db, run_id, status, stop_reason, answer, detail, totals, failure_kind
            )
        )

    def abandon_attempt(self, run_id: str, *, previous: Run, error: str) -> Run:
        return self._with_room(lambda: sql_runs.abandon_attempt(self._db, run_id, previous, error))

    def _with_room(self, write: Callable[[], Run]) -> Run:
        """``write``, retried once with the blob store's reserve given back to the disk if
        the store could not write: recording how a run ended must not fail for want of a
        few pages on a full disk (the reserve is set aside again when the store opens)."""
        try:
            return write()
        except StoreWriteError:
            blobs = self._db.blobs
            if not isinstance(blobs, LocalBlobStore) or not blobs.release_reserve():
                raise
            return write()

    def heartbeat(self, run_id: str) -> None:
        sql_runs.heartbeat(self._db, run_id)

    def mark_interrupted_runs(self, *, stale_after_s: float = 120.0) -> list[str]:
        return sql_runs.mark_interrupted(self._db, stale_after_s)

    def claim_next(
        self, *, stale_after_s: float = 15.0, tenants_full: Collection[str] = ()
    ) -> Run | None:
        return sql_queue.claim_next(self._db, stale_after_s, tenants_full)

    def claim_batch(
        self, limit: int, *, stale_after_s: float = 15.0, tenant_limit: int | None = None
    ) -> list[Run]:
        return sql_queue.claim_batch(self._db, limit, stale_after_s, tenant_limit)

    def count_running_by_tenant(self) -> dict[str, int]:
        return sql_queue.count_running_by_tenant(self._db)

    def request_cancel(self, run_id: str) -> Run:
        return sql_queue.request_cancel(self._db, run_id)

    def claim_run(
        self, run_id: str, *, statuses: Collection[RunStatus] = RESUMABLE_STATUSES
    ) -> Run:
        return sql_runs.claim_run(self._db, run_id, statuses)

    def delete_run(self, run_id: str) -> bool:
        return sql_runs.delete_run(self._db, run_id)

    def run_tree(self, run_id: str) -> RunTree | None:
        with self._db.read() as conn:
            run = conn.execute(sql_runs.select_run(run_id)).mappings().first()
            if run is None:
                return None
            nodes = sql_journal.list_nodes(conn, run_id)
            cells = sql_journal.list_cells(self._db, conn, run_id, None)
        return RunTree(run=sql_runs.to_run(run), nodes=tuple(nodes), cells=tuple(cells))

    # journal: nodes

    def start_node(self, node: NodeStart) -> Node:
        return sql_journal.start_node(self._db, node)

    def record_model_call(self, call: ModelCall) -> ModelCall:
        return sql_journal.record_model_call(self._db, call)

    def find_model_call(self, run_id: str, node_id: str) -> ModelCall | None:
        return sql_journal.find_model_call(self._db, run_id, node_id)

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
        return sql_journal.finish_node(
            self._db,
            run_id,
            node_id,
            status,
            usage=usage or Usage(),
            cost_usd=cost_usd,
            latency_s=latency_s,
            response=response,
            error=error,
            meta=meta,
        )

    def get_node(self, run_id: str, node_id: str) -> Node | None:
        return sql_journal.get_node(self._db, run_id, node_id)

    # journal: many writes at once

    @property
    def journal_writer(self) -> GroupCommitWriter:
        with self._writer_lock:
            if self._writer is None:
                # A long batch of events is committed in slices (see `EVENTS_SLICE`), so a
                # reply waits for one slice at most. SQLite's commit is a local fsync, short
                # enough for a loop to wait for (`SETTLE_S`); Postgres's a round trip.
                local = self._writer_conn is None
                self._writer = GroupCommitWriter(
                    self._commit_group,
                    events_slice=EVENTS_SLICE,
                    settle_s=SETTLE_S if local else None,
                )
            return self._writer

    def write_journal(self, writes: JournalWrites) -> None:
        try:
            with self._db.write() as conn:
                self._write_journal_in(conn, writes)
        except IntegrityError:
            raise _run_not_found(writes) from None

    def _commit_group(self, writes: JournalWrites) -> None:
        """`write_journal` on the writer thread (on Postgres, on its own connection)."""
        if self._writer_conn is None:
            self.write_journal(writes)
            return
        try:
            self._writer_conn.run(lambda conn: self._write_journal_in(conn, writes))
        except IntegrityError:
            raise _run_not_found(writes) from None

    def _write_journal_in(self, conn: Connection, writes: JournalWrites) -> None:
        sql_journal.record_model_calls(self._db, conn, writes.calls)
        write_cells_in(self._db, conn, writes.cell_starts, writes.cell_finishes)
        if writes.events:
            sql_events.append_events_in(conn, writes.events)

    def load_journal(self, run_id: str) -> JournalSnapshot:
        return sql_journal.load_journal(self._db, run_id)

    # journal: cells

    def begin_cell(
        self, cell: CellStart, *, status: Literal["pending", "executing"] = "executing"
    ) -> Cell:
        return sql_journal.begin_cell(self._db, cell, status)

    def finish_cell(
        self,
        key: CellKey,
        *,
        status: Literal["completed", "failed", "blocked"],
        output: str = "",
        error: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Cell:
        return sql_journal.finish_cell(self._db, key, status, output, error, meta)

    def get_cell(self, key: CellKey) -> Cell | None:
        return sql_journal.get_cell(self._db, key)

    def list_cells(self, run_id: str, *, node_id: str | None = None) -> list[Cell]:
        with self._db.read() as conn:
            return sql_journal.list_cells(self._db, conn, run_id, node_id)

    # events

    def append_event(self, event: Event) -> int:
        return sql_events.append_events(self._db, [event])[0]

    def append_events(self, events: Sequence[Event]) -> list[int]:
        return sql_events.append_events(self._db, events)

    def list_events(
        self, run_id: str, *, after_seq: int = -1, limit: int | None = None
    ) -> list[StoredEvent]:
        return sql_events.list_events(self._db, run_id, after_seq, limit)

    # sessions

    def open_session(
        self, name: str, data: Mapping[str, Any] | None = None, *, tenant: str = LOCAL_TENANT
    ) -> Session:
        return sql_sessions.open_session(self._db, name, data, tenant)

    def get_session(self, name: str) -> Session | None:
        return sql_sessions.get_session(self._db, name)

    def list_sessions(self, limit: int = 100, *, tenant: str | None = None) -> list[Session]:
        return sql_sessions.list_sessions(self._db, limit, tenant)

    def update_session(
        self, name: str, data: Mapping[str, Any], *, expected_version: int
    ) -> Session:
        return sql_sessions.update_session(self._db, name, data, expected_version)

    def delete_session(self, name: str) -> bool:
        return sql_sessions.delete_session(self._db, name)

    # memory

    def memory_get(self, scope: MemoryScope, key: str) -> MemoryItem | None:
        return sql_sessions.memory_get(self._db, scope, key)

    def memory_set(self, scope: MemoryScope, key: str, value: Any) -> MemoryItem:
        return sql_sessions.memory_set(self._db, scope, key, value)

    def memory_list(self, scope: MemoryScope) -> list[MemoryItem]:
        return sql_sessions.memory_list(self._db, scope)

    def memory_delete(self, scope: MemoryScope, key: str) -> bool:
        return sql_sessions.memory_delete(self._db, scope, key)

    # contexts

    def register_context(self, record: ContextRecord) -> ContextRecord:
        return sql_sessions.register_context(self._db, record)

    def get_context(self, content_hash: str) -> ContextRecord | None:
        return sql_sessions.get_context(self._db, content_hash)

    def list_contexts(self) -> list[ContextRecord]:
        return sql_sessions.list_contexts(self._db)

    def delete_unused_contexts(self, *, older_than_s: float) -> int:
        return sql_sessions.delete_unused_contexts(self._db, older_than_s=older_than_s)

    def blob_refs_in_use(self) -> set[str]:
        return sql_sessions.blob_refs_in_use(self._db)

    # response cache

    def get_cached_response(self, key: str) -> CachedResponse | None:
        return sql_cache.get_cached_response(self._db, key)

    def put_cached_response(self, entry: CachedResponse) -> None:
        sql_cache.put_cached_response(self._db, entry)

    def response_cache_stats(self) -> list[CacheStats]:
        return sql_cache.response_cache_stats(self._db)

    def clear_response_cache(
        self, *, model: str | None = None, unused_for_s: float | None = None
    ) -> int:
        return sql_cache.clear_response_cache(self._db, model=model, unused_for_s=unused_for_s)

    # usage

    def usage_rows(self, *, tenant: str, since: float | None = None) -> list[UsageRow]:
        return sql_usage.usage_rows(self._db, tenant, since)

    def tenant_cost_since(self, tenant: str, since: float) -> float:
        return sql_usage.tenant_cost_since(self._db, tenant, since)

    # API keys

    def add_api_key(self, key: ApiKey) -> ApiKey:
        return sql_keys.add_api_key(self._db, key)

    def get_api_key(self, key_id: str) -> ApiKey | None:
        return sql_keys.get_api_key(self._db, key_id)

    def list_api_keys(self, *, tenant: str | None = None) -> list[ApiKey]:
        return sql_keys.list_api_keys(self._db, tenant)

    def revoke_api_key(self, key_id: str) -> bool:
        return sql_keys.revoke_api_key(self._db, key_id)

    def any_api_keys(self) -> bool:
        return sql_keys.any_api_keys(self._db)


def _run_not_found(writes: JournalWrites) -> RunNotFoundError:
    runs = {c.run_id for c in writes.calls} | {c.run_id for c in writes.cell_starts}
    return RunNotFoundError(", ".join(sorted(runs)))
