"""Sessions (optimistic concurrency), scoped memory, the context registry and what blobs
the store still refers to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Connection, RowMapping, delete, select, update

from rlm_engine.store.errors import ConcurrencyError, JournalConflictError, SessionNotFoundError
from rlm_engine.store.records import ContextRecord, MemoryItem, MemoryScope, Session
from rlm_engine.store.sql_base import SqlDb, upsert
from rlm_engine.store.sql_journal import snapshot_refs
from rlm_engine.store.tables import cells, contexts, memory, nodes, runs, sessions


def _session(row: RowMapping) -> Session:
    return Session(
        name=row["name"],
        version=row["version"],
        data=dict(row["data"] or {}),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        tenant=row["tenant"],
    )


def ensure_session(
    conn: Connection, name: str, data: Mapping[str, Any], now: float, tenant: str
) -> RowMapping:
    """The session's row, created if it does not exist (concurrent creators both succeed).

    Raises `JournalConflictError` if the name belongs to another tenant."""
    values = {
        "name": name,
        "version": 1,
        "data": dict(data),
        "created_at": now,
        "updated_at": now,
        "tenant": tenant,
    }
    upsert(conn, sessions, values, keys=["name"])
    row = conn.execute(select(sessions).where(sessions.c.name == name)).mappings().one()
    if row["tenant"] != tenant:
        # Said without naming the owner: a tenant learns nothing about another's sessions.
        raise JournalConflictError(
            f"the session name {name!r} is taken", hint="choose another session name"
        )
    return row


def open_session(db: SqlDb, name: str, data: Mapping[str, Any] | None, tenant: str) -> Session:
    with db.write() as conn:
        return _session(ensure_session(conn, name, data or {}, db.now(), tenant))


def get_session(db: SqlDb, name: str) -> Session | None:
    with db.read() as conn:
        row = conn.execute(select(sessions).where(sessions.c.name == name)).mappings().first()
    return None if row is None else _session(row)


def list_sessions(db: SqlDb, limit: int, tenant: str | None) -> list[Session]:
    query = select(sessions).order_by(sessions.c.updated_at.desc(), sessions.c.name).limit(limit)
    if tenant is not None:
        query = query.where(sessions.c.tenant == tenant)
    with db.read() as conn:
        return [_session(row) for row in conn.execute(query).mappings()]


def update_session(db: SqlDb, name: str, data: Mapping[str, Any], expected_version: int) -> Session:
    with db.write() as conn:
        # Compare-and-set on the version: only one of two writers that read the same
        # version can win; the other gets a ConcurrencyError and must re-read.
        result = conn.execute(
            update(sessions)
            .where(sessions.c.name == name, sessions.c.version == expected_version)
            .values(data=dict(data), version=sessions.c.version + 1, updated_at=db.now())
        )
        row = conn.execute(select(sessions).where(sessions.c.name == name)).mappings().first()
        if row is None:
            raise SessionNotFoundError(name)
        if result.rowcount != 1:
            raise ConcurrencyError(f"session {name!r}", expected_version, row["version"])
        return _session(row)


def delete_session(db: SqlDb, name: str) -> bool:
    """Delete a session and its memory; its runs stay (detached) for the audit trail."""
    with db.write() as conn:
        conn.execute(update(runs).where(runs.c.session == name).values(session=None))
        conn.execute(
            delete(memory).where(memory.c.scope_kind == "session", memory.c.scope_name == name)
        )
        return conn.execute(delete(sessions).where(sessions.c.name == name)).rowcount > 0


def _item(row: RowMapping) -> MemoryItem:
    scope = MemoryScope(row["scope_kind"], row["scope_name"])
    return MemoryItem(scope=scope, key=row["key"], value=row["value"], updated_at=row["updated_at"])


def _in_scope(scope: MemoryScope) -> tuple[Any, Any]:
    return memory.c.scope_kind == scope.kind, memory.c.scope_name == scope.name


def memory_get(db: SqlDb, scope: MemoryScope, key: str) -> MemoryItem | None:
    query = select(memory).where(*_in_scope(scope), memory.c.key == key)
    with db.read() as conn:
        row = conn.execute(query).mappings().first()
    return None if row is None else _item(row)


def memory_set(db: SqlDb, scope: MemoryScope, key: str, value: Any) -> MemoryItem:
    now = db.now()
    values = {
        "scope_kind": scope.kind,
        "scope_name": scope.name,
        "key": key,
        "value": value,
        "updated_at": now,
    }
    with db.write() as conn:
        upsert(
            conn,
            memory,
            values,
            keys=["scope_kind", "scope_name", "key"],
            update=["value", "updated_at"],
        )
    return MemoryItem(scope=scope, key=key, value=value, updated_at=now)


def memory_list(db: SqlDb, scope: MemoryScope) -> list[MemoryItem]:
    query = select(memory).where(*_in_scope(scope)).order_by(memory.c.key)
    with db.read() as conn:
        return [_item(row) for row in conn.execute(query).mappings()]


def memory_delete(db: SqlDb, scope: MemoryScope, key: str) -> bool:
    with db.write() as conn:
        result = conn.execute(delete(memory).where(*_in_scope(scope), memory.c.key == key))
        return result.rowcount > 0


def _context(row: RowMapping) -> ContextRecord:
    return ContextRecord(
        content_hash=row["content_hash"],
        size=row["size"],
        kind=row["kind"],
        path=row["path"],
        blob_ref=row["blob_ref"],
        meta=dict(row["meta"] or {}),
        created_at=row["created_at"],
    )


def register_context(db: SqlDb, record: ContextRecord) -> ContextRecord:
    values = {
        "content_hash": record.content_hash,
        "size": record.size,
        "kind": record.kind,
        "path": record.path,
        "blob_ref": record.blob_ref,
        "meta": dict(record.meta),
        "created_at": record.created_at or db.now(),
    }
    query = select(contexts).where(contexts.c.content_hash == record.content_hash)
    with db.write() as conn:
        # Content-addressed: the first registration of a hash stands.
        upsert(conn, contexts, values, keys=["content_hash"])
        return _context(conn.execute(query).mappings().one())


def get_context(db: SqlDb, content_hash: str) -> ContextRecord | None:
    query = select(contexts).where(contexts.c.content_hash == content_hash)
    with db.read() as conn:
        row = conn.execute(query).mappings().first()
    return None if row is None else _context(row)


def list_contexts(db: SqlDb) -> list[ContextRecord]:
    with db.read() as conn:
        rows = conn.execute(select(contexts).order_by(contexts.c.created_at)).mappings()
        return [_context(row) for row in rows]


def delete_unused_contexts(db: SqlDb, *, older_than_s: float) -> int:
    used = select(runs.c.context_hash).where(runs.c.context_hash.is_not(None))
    candidates = select(contexts.c.content_hash).where(
        contexts.c.content_hash.not_in(used), contexts.c.created_at < db.now() - older_than_s
    )
    with db.write() as conn:
        unused = set(conn.execute(candidates).scalars())
        if not unused:
            return 0
        # A session keeps its context (its `context_key`) for the runs it has not had yet.
        for data in conn.execute(select(sessions.c.data)).scalars():
            if isinstance(data, Mapping):
                unused.discard(cast(Mapping[str, Any], data).get("context_key"))
        if not unused:
            return 0
        stmt = delete(contexts).where(contexts.c.content_hash.in_(unused))
        return conn.execute(stmt).rowcount


def blob_refs_in_use(db: SqlDb) -> set[str]:
    """Blob references held by journal rows and registered contexts (not what the blobs
    themselves refer to, such as a pinned context's files)."""
    columns = (
        nodes.c.request_ref,
        nodes.c.response_ref,
        cells.c.output_ref,
        contexts.c.blob_ref,
    )
    refs: set[str] = set()
    with db.read() as conn:
        for column in columns:
            query = select(column).where(column.is_not(None)).distinct()
            refs.update(conn.execute(query).scalars())
        refs.update(snapshot_refs(conn))
    return refs
