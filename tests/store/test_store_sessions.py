"""Sessions with optimistic concurrency, scoped memory and the context registry."""

from __future__ import annotations

import pytest
from store_support import new_run

from rlm_engine.store import (
    ConcurrencyError,
    ContextRecord,
    MemoryScope,
    SessionNotFoundError,
    SqlStore,
)


def test_open_session_creates_once(store: SqlStore) -> None:
    created = store.open_session("work", {"repl": "snapshot-1"})
    assert created.version == 1 and created.data == {"repl": "snapshot-1"}
    assert store.open_session("work", {"ignored": True}) == created
    assert store.get_session("work") == created
    assert store.get_session("other") is None


def test_a_stale_update_raises_concurrency_error(store: SqlStore) -> None:
    read_by_a = store.open_session("work")
    read_by_b = store.get_session("work")
    assert read_by_b is not None
    updated = store.update_session("work", {"turns": 1}, expected_version=read_by_a.version)
    assert updated.version == 2 and updated.data == {"turns": 1}
    with pytest.raises(ConcurrencyError) as caught:
        store.update_session("work", {"turns": 99}, expected_version=read_by_b.version)
    assert (caught.value.expected_version, caught.value.actual_version) == (1, 2)
    assert store.get_session("work") == updated
    with pytest.raises(SessionNotFoundError):
        store.update_session("missing", {}, expected_version=1)


def test_sessions_list_and_delete(store: SqlStore) -> None:
    store.open_session("old")
    store.open_session("new")
    store.update_session("new", {"x": 1}, expected_version=1)
    assert [s.name for s in store.list_sessions()] == ["new", "old"]
    new_run(store, "in-session", session="new")
    store.memory_set(MemoryScope.session("new"), "k", 1)
    store.memory_set(MemoryScope.user("me"), "k", 2)
    assert store.delete_session("new") is True
    assert store.delete_session("new") is False
    assert store.get_session("new") is None
    run = store.get_run("in-session")
    assert run is not None and run.session is None  # the run stays for the audit trail
    assert store.memory_list(MemoryScope.session("new")) == []
    assert store.memory_get(MemoryScope.user("me"), "k") is not None


def test_runs_join_their_session(store: SqlStore) -> None:
    new_run(store, "r1", session="chat")
    new_run(store, "r2", session="chat")
    assert store.get_session("chat") is not None
    assert [r.run_id for r in store.list_runs(session="chat")] == ["r2", "r1"]


def test_memory_is_scoped(store: SqlStore) -> None:
    session, user = MemoryScope.session("s1"), MemoryScope.user("s1")
    store.memory_set(session, "facts", {"a": [1, 2], "b": None})
    store.memory_set(user, "facts", "user-level")
    store.memory_set(session, "count", 3)
    store.memory_set(session, "count", 4)
    item = store.memory_get(session, "facts")
    assert item is not None and item.value == {"a": [1, 2], "b": None}
    assert store.memory_get(user, "facts").value == "user-level"  # type: ignore[union-attr]
    assert [(m.key, m.value) for m in store.memory_list(session)] == [
        ("count", 4),
        ("facts", {"a": [1, 2], "b": None}),
    ]
    assert store.memory_delete(session, "count") is True
    assert store.memory_delete(session, "count") is False
    assert store.memory_get(session, "count") is None


def test_contexts_are_registered_by_hash(store: SqlStore) -> None:
    ref = store.blobs.put(b"big context")
    record = ContextRecord(
        content_hash=ref, size=11, kind="text", blob_ref=ref, meta={"files": 1}, created_at=5.0
    )
    assert store.register_context(record) == record
    again = store.register_context(ContextRecord(content_hash=ref, size=11, kind="other"))
    assert again == record
    huge = ContextRecord(content_hash="f" * 64, size=10 * 2**30, kind="files", path="/data")
    assert store.register_context(huge).size == 10 * 2**30
    assert store.get_context("0" * 64) is None
