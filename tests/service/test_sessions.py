"""Sessions: contexts uploaded in chunks, given as text or as an allowed server path,
pinned in the store; memory; every id answers only its own tenant."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from rlm_engine.errors import ContextError
from rlm_engine.service.errors import ContextTooLargeError, PathNotAllowedError
from rlm_engine.service.limits import ServiceLimits
from rlm_engine.service.principal import Principal
from rlm_engine.service.sessions import SessionInfo, SessionService, safe_filename
from rlm_engine.settings import Settings
from rlm_engine.store import SessionNotFoundError, SqlStore, open_store
from rlm_engine.store.pinned_context import pinned_entries, restore_context

ALICE = Principal("alice", "a")
BOB = Principal("bob", "b")
MIB = 1024 * 1024


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(store_url: str, home: Path) -> Iterator[SqlStore]:
    opened = open_store(store_url, home)
    try:
        yield opened
    finally:
        opened.close()


def service(
    store: SqlStore, home: Path, *, allowed: tuple[Path, ...] = (), max_bytes: int = 64 * MIB
) -> SessionService:
    settings = Settings(home=home, allowed_paths=allowed)
    return SessionService(store, settings, ServiceLimits(max_context_bytes=max_bytes))


def restored_bytes(store: SqlStore, info: SessionInfo, scratch: Path) -> bytes:
    assert info.context_key is not None
    (path,) = restore_context(store, info.context_key, scratch)
    return path.read_bytes()


def uploads_left(home: Path) -> list[Path]:
    return list((home / "uploads").rglob("*"))


class Chunks:
    """An upload arriving in chunks; counts how many were read."""

    def __init__(self, chunk: bytes, count: int) -> None:
        self.chunk = chunk
        self.count = count
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.read += 1
            yield self.chunk


async def test_a_streamed_upload_is_pinned_and_its_file_removed(
    store: SqlStore, home: Path, tmp_path: Path
) -> None:
    sessions = service(store, home)
    chunk = bytes(range(256)) * 256  # 64 KiB
    upload = Chunks(chunk, 48)  # 3 MiB

    info = await sessions.create_stream(
        ALICE, "report", upload.__aiter__(), filename="../../notes.bin", max_bytes=4 * MIB
    )

    assert info.id.startswith("ses_") and len(info.id) == 20
    assert info.name == "report"
    assert info.context_bytes == 48 * len(chunk)
    assert info.filename == "notes.bin"
    assert info.runs == 0
    assert restored_bytes(store, info, tmp_path / "scratch") == chunk * 48
    entries = pinned_entries(store, info.context_key or "")
    assert entries is not None
    assert [f["name"] for f in entries[0]["files"]] == ["notes.bin"]
    assert uploads_left(home) == []
    assert sessions.get(ALICE, info.id) == info


async def test_an_upload_past_the_limit_stops_at_once_and_keeps_nothing(
    store: SqlStore, home: Path
) -> None:
    sessions = service(store, home)
    upload = Chunks(b"x" * MIB, 100)

    with pytest.raises(ContextTooLargeError) as caught:
        await sessions.create_stream(
            ALICE, "big", upload.__aiter__(), filename="big.txt", max_bytes=5 * MIB
        )

    assert caught.value.max_bytes == 5 * MIB
    assert upload.read == 6  # the chunk that passed the limit is the last one read
    assert uploads_left(home) == []
    assert sessions.list(ALICE) == []


def test_a_text_session_rebuilds_its_text(store: SqlStore, home: Path, tmp_path: Path) -> None:
    sessions = service(store, home)
    info = sessions.create_text(ALICE, "doc", "héllo wörld\n" * 1000)
    assert info.context_bytes == len(("héllo wörld\n" * 1000).encode())
    assert restored_bytes(store, info, tmp_path / "s").decode() == "héllo wörld\n" * 1000
    assert uploads_left(home) == []
    with pytest.raises(ContextTooLargeError):
        service(store, home, max_bytes=10).create_text(ALICE, "doc", "eleven char")


def test_server_paths_are_refused_unless_allowed(
    store: SqlStore, home: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("inside")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")

    with pytest.raises(PathNotAllowedError) as caught:
        service(store, home).create_path(ALICE, "x", data / "a.txt")
    assert "RLM_ALLOWED_PATHS" in caught.value.hint

    sessions = service(store, home, allowed=(data,))
    info = sessions.create_path(ALICE, "a", data / "a.txt")
    assert restored_bytes(store, info, tmp_path / "s") == b"inside"
    assert info.filename == "a.txt"

    with pytest.raises(PathNotAllowedError):
        sessions.create_path(ALICE, "x", secret)
    with pytest.raises(PathNotAllowedError):
        sessions.create_path(ALICE, "x", data / ".." / "secret.txt")
    os.symlink(secret, data / "link.txt")
    with pytest.raises(PathNotAllowedError):
        sessions.create_path(ALICE, "x", data / "link.txt")
    # A directory under the root with a link out of it is refused whole.
    with pytest.raises(PathNotAllowedError):
        sessions.create_path(ALICE, "x", data)
    with pytest.raises(ContextError):
        sessions.create_path(ALICE, "x", data / "missing.txt")


def test_an_allowed_directory_is_pinned_whole(store: SqlStore, home: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "docs" / "one.txt").write_text("1")
    (root / "docs" / "sub" / "two.txt").write_text("22")
    info = service(store, home, allowed=(root,)).create_path(ALICE, "d", root / "docs")
    assert info.context_bytes == 3
    assert info.filename is None
    entries = pinned_entries(store, info.context_key or "")
    assert entries is not None
    assert sorted(f["name"] for f in entries[0]["files"]) == ["docs/one.txt", "docs/sub/two.txt"]
    with pytest.raises(ContextTooLargeError):
        service(store, home, allowed=(root,), max_bytes=2).create_path(ALICE, "d", root / "docs")


def test_another_tenants_session_is_not_found(store: SqlStore, home: Path) -> None:
    sessions = service(store, home)
    mine = sessions.create_text(ALICE, "mine", "alice's")
    theirs = sessions.create_text(BOB, "theirs", "bob's")

    assert [s.id for s in sessions.list(ALICE)] == [mine.id]
    assert [s.id for s in sessions.list(BOB)] == [theirs.id]
    for attempt in (
        lambda: sessions.get(BOB, mine.id),
        lambda: sessions.delete(BOB, mine.id),
        lambda: sessions.memory_list(BOB, mine.id),
        lambda: sessions.memory_get(BOB, mine.id, "k"),
        lambda: sessions.memory_set(BOB, mine.id, "k", 1),
        lambda: sessions.memory_delete(BOB, mine.id, "k"),
        lambda: sessions.get(ALICE, "ses_0000000000000000"),
    ):
        with pytest.raises(SessionNotFoundError):
            attempt()
    assert sessions.get(ALICE, mine.id) == mine


def test_session_memory_round_trips_and_goes_with_the_session(store: SqlStore, home: Path) -> None:
    sessions = service(store, home)
    info = sessions.create_text(ALICE, "m", "ctx")
    sessions.memory_set(ALICE, info.id, "facts", {"n": [1, 2]})
    sessions.memory_set(ALICE, info.id, "answer", 42)

    assert [item.key for item in sessions.memory_list(ALICE, info.id)] == ["answer", "facts"]
    item = sessions.memory_get(ALICE, info.id, "facts")
    assert item is not None and item.value == {"n": [1, 2]}
    assert sessions.memory_delete(ALICE, info.id, "answer") is True
    assert sessions.memory_delete(ALICE, info.id, "answer") is False
    assert sessions.memory_get(ALICE, info.id, "answer") is None

    sessions.delete(ALICE, info.id)
    with pytest.raises(SessionNotFoundError):
        sessions.get(ALICE, info.id)
    with pytest.raises(SessionNotFoundError):
        sessions.delete(ALICE, info.id)


def test_upload_file_names_keep_their_last_part_only() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Users\\me\\report.pdf") == "report.pdf"
    assert safe_filename(None) == "context.txt"
    assert safe_filename("..") == "context.txt"
    assert safe_filename("  ") == "context.txt"


def test_garbage_collection_keeps_a_session_context_until_the_session_goes(
    store: SqlStore, home: Path, tmp_path: Path
) -> None:
    sessions = service(store, home)
    info = sessions.create_text(ALICE, "notes", "kept for later runs")
    assert info.context_key is not None
    # No run has used the context yet: only the session holds it.
    assert store.delete_unused_contexts(older_than_s=-60) == 0
    assert restored_bytes(store, info, tmp_path / "one") == b"kept for later runs"
    sessions.delete(ALICE, info.id)
    assert store.delete_unused_contexts(older_than_s=-60) == 1
    assert store.get_context(info.context_key) is None
