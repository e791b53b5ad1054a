"""Contexts pinned in the store: kept once by content, restored as they were."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rlm_engine.store import SqlStore, StoreError
from rlm_engine.store.pinned_context import (
    BackgroundPin,
    ContextChangedError,
    PinCancelledError,
    pin_context,
    pinned_entries,
    restore_context,
)


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "src" / "app.log"
    log.parent.mkdir()
    log.write_text("disk ok\ndisk failed\n")
    docs = tmp_path / "src" / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.md").write_text("alpha")
    (docs / "sub" / "b.md").write_text("beta")
    return log, docs


def test_unchanged_paths_come_back_as_they_are(
    store: SqlStore, sources: tuple[Path, Path], tmp_path: Path
) -> None:
    record = pin_context(store, list(sources))
    assert record is not None and record.size == len("disk ok\ndisk failed\nalphabeta")
    assert restore_context(store, record.content_hash, tmp_path / "scratch") == list(sources)
    assert not (tmp_path / "scratch").exists()


def test_changed_or_deleted_paths_are_rebuilt_from_the_pinned_copy(
    store: SqlStore, sources: tuple[Path, Path], tmp_path: Path
) -> None:
    log, docs = sources
    record = pin_context(store, [log, docs])
    assert record is not None
    log.write_text("rewritten")
    (docs / "sub" / "b.md").unlink()
    (docs / "c.md").write_text("new")
    log_copy, docs_copy = restore_context(store, record.content_hash, tmp_path / "scratch")
    assert log_copy != log and log_copy.name == "app.log"
    assert log_copy.read_text() == "disk ok\ndisk failed\n"
    assert docs_copy.name == "docs"
    files = sorted(str(p.relative_to(docs_copy)) for p in docs_copy.rglob("*") if p.is_file())
    assert files == ["a.md", "sub/b.md"]
    assert (docs_copy / "sub" / "b.md").read_text() == "beta"


def test_a_touched_file_with_the_same_bytes_is_rebuilt_but_is_the_same_context(
    store: SqlStore, sources: tuple[Path, Path], tmp_path: Path
) -> None:
    log, _ = sources
    first = pin_context(store, [log])
    os.utime(log, ns=(1, 1))
    second = pin_context(store, [log])
    assert first is not None and second is not None
    assert first.content_hash == second.content_hash
    entries = pinned_entries(store, first.content_hash)
    assert entries is not None and entries[0]["files"][0]["mtime_ns"] != 1
    [copy] = restore_context(store, first.content_hash, tmp_path / "scratch")
    assert copy != log and copy.read_text() == log.read_text()


def test_no_paths_pin_nothing_and_unknown_hashes_are_typed_errors(
    store: SqlStore, tmp_path: Path
) -> None:
    assert pin_context(store, []) is None
    with pytest.raises(StoreError, match="not pinned"):
        restore_context(store, "0" * 64, tmp_path)


def test_a_background_pin_is_registered_under_its_key_with_the_content_identity(
    store: SqlStore, sources: tuple[Path, Path], tmp_path: Path
) -> None:
    log, docs = sources
    pin = BackgroundPin(store, "run-1", [log, docs])
    assert store.get_context(pin.key) is None  # nothing is read or stored before start
    record = pin.start().result(timeout=30)
    assert record.content_hash == pin.key and pin.done()
    direct = pin_context(store, [log, docs])
    assert direct is not None and record.meta["content_hash"] == direct.content_hash
    assert record.size == direct.size and record.blob_ref == direct.blob_ref
    log.write_text("rewritten after the run")
    log_copy, docs_copy = restore_context(store, pin.key, tmp_path / "scratch")
    assert log_copy.read_text() == "disk ok\ndisk failed\n" and docs_copy == docs


def test_the_key_is_known_at_once_and_differs_per_run(
    store: SqlStore, sources: tuple[Path, Path]
) -> None:
    log, _ = sources
    first, second = BackgroundPin(store, "a", [log]), BackgroundPin(store, "b", [log])
    assert len(first.key) == 64 and first.key != second.key


@pytest.mark.parametrize("change", ["write", "touch", "delete"])
def test_a_file_changed_after_the_run_started_fails_the_pin(
    store: SqlStore, sources: tuple[Path, Path], change: str
) -> None:
    log, docs = sources
    pin = BackgroundPin(store, "run-1", [log, docs])  # what the run saw
    target = docs / "sub" / "b.md"
    if change == "write":
        target.write_text("BETA")
    elif change == "touch":
        os.utime(target, ns=(1, 1))
    else:
        target.unlink()
    with pytest.raises(ContextChangedError, match="b.md"):
        pin.start().result(timeout=30)
    assert store.get_context(pin.key) is None


def test_a_stopped_pin_stores_no_context(store: SqlStore, sources: tuple[Path, Path]) -> None:
    pin = BackgroundPin(store, "run-1", list(sources))
    pin.stop()
    with pytest.raises(PinCancelledError):
        pin.start().result(timeout=30)
    assert store.get_context(pin.key) is None


async def test_wait_gives_the_record_in_the_event_loop(
    store: SqlStore, sources: tuple[Path, Path]
) -> None:
    pin = BackgroundPin(store, "run-1", list(sources)).start()
    record = await pin.wait()
    assert record.content_hash == pin.key
