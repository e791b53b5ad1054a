"""Refused store writes become `StoreWriteError`; the blob store's reserve makes room once."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from rlm_engine.errors import ErrorCause
from rlm_engine.store.blobs import LocalBlobStore
from rlm_engine.store.errors import StoreError
from rlm_engine.store.factory import open_store
from rlm_engine.store.write_errors import StoreWriteError, store_write_error


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device", "/home/x"),
        OSError(errno.EROFS, "Read-only file system"),
        sqlite3.OperationalError("database or disk is full"),
        OperationalError("UPDATE runs", {}, sqlite3.OperationalError("database is locked")),
    ],
)
def test_a_refused_write_is_a_store_write_error_that_says_to_resume(exc: Exception) -> None:
    mapped = store_write_error(exc)
    assert isinstance(mapped, StoreWriteError)
    assert isinstance(mapped, StoreError)
    assert "could not write" in str(mapped)
    assert "rlm runs resume" in ErrorCause.of(mapped).hint


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("a bug"),
        IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")),
        OSError(errno.ENOENT, "No such file or directory"),
        StoreWriteError("already typed"),
    ],
)
def test_other_errors_keep_their_own_types(exc: Exception) -> None:
    assert store_write_error(exc) is None


def test_the_store_sets_a_reserve_aside_and_gives_it_up_once(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "home")
    try:
        blobs = store.blobs
        assert isinstance(blobs, LocalBlobStore)
        reserve = blobs.root / LocalBlobStore.RESERVE_NAME
        assert reserve.stat().st_size == LocalBlobStore.RESERVE_BYTES
        assert list(blobs.list_blobs()) == []  # not a blob: garbage collection leaves it be
        assert blobs.release_reserve()
        assert not reserve.exists()
        assert not blobs.release_reserve()
    finally:
        store.close()
    open_store(None, tmp_path / "home").close()
    assert reserve.exists()  # set aside again when the store next opens


def test_a_database_write_the_store_refuses_raises_store_write_error(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from rlm_engine.store.sql_base import SqlDb

    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db = SqlDb(engine, LocalBlobStore(tmp_path / "blobs"), 1024)
    try:
        with pytest.raises(StoreWriteError, match="readonly") as caught, db.write() as conn:
            conn.exec_driver_sql("PRAGMA query_only = 1")  # as a read-only file would
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        assert isinstance(caught.value.__cause__, OperationalError)
    finally:
        engine.dispose()
