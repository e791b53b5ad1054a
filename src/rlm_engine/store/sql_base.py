"""Shared plumbing of the SQL store: transactions, inline-or-blob texts, portable upserts."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Table
from sqlalchemy.dialects import postgresql, sqlite

from rlm_engine.store.blobs import BlobStore, sha256_text
from rlm_engine.store.connect import READ_ONLY
from rlm_engine.store.owner import ProcessOwner, current_owner, refresh_owner

# Texts up to this many UTF-8 bytes are stored in the row; longer ones go to the blob store.
DEFAULT_INLINE_LIMIT = 32 * 1024


class SqlDb:
    """An engine, a blob store and the conventions every table module follows."""

    def __init__(self, engine: Engine, blobs: BlobStore, inline_limit: int) -> None:
        self.engine = engine
        self.blobs = blobs
        self.inline_limit = inline_limit
        self._pid = os.getpid()
        # SQLite admits one writer at a time and makes the others retry in its busy handler,
        # which sleeps in growing steps: a batch of journal writes from several threads paid
        # ~20 ms each instead of ~2 ms. Queueing this process's writers on a lock keeps them
        # in order; other processes still meet at SQLite's own lock.
        self._write_lock = threading.RLock() if engine.dialect.name == "sqlite" else None

    @contextmanager
    def write(self) -> Generator[Connection]:
        """One write transaction (on SQLite `BEGIN IMMEDIATE`: writers queue, never deadlock)."""
        if self._write_lock is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Generator[Connection]:
        """One read-only transaction: a consistent snapshot that takes no write lock."""
        with self.engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            with conn.begin():
                yield conn

    @property
    def owner(self) -> ProcessOwner:
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            return refresh_owner()
        return current_owner()

    @staticmethod
    def now() -> float:
        return time.time()

    def pack(self, text: str | None) -> tuple[str | None, str | None]:
        """(inline text, blob ref): short texts inline, long ones written to the blob store.

        The blob is durable before the row that references it is committed.
        """
        if text is None:
            return None, None
        data = text.encode("utf-8")
        if len(data) <= self.inline_limit:
            return text, None
        return None, self.blobs.put(data)

    def unpack(self, inline: str | None, ref: str | None) -> str | None:
        """The text stored by `pack`."""
        if ref is not None:
            return self.blobs.get(ref).decode("utf-8")
        return inline


def text_hash(text: str | None) -> str | None:
    return None if text is None else sha256_text(text)


def upsert(
    conn: Connection,
    table: Table,
    values: Mapping[str, Any],
    keys: Sequence[str],
    update: Sequence[str] = (),
    where: ColumnElement[bool] | None = None,
) -> None:
    """INSERT, or on a key conflict UPDATE the `update` columns (if `where` holds) or skip.

    Native ON CONFLICT keeps concurrent writers of the same key from failing each other.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(dict(values))
    if update:
        set_ = {name: stmt.excluded[name] for name in update}
        conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=set_, where=where))
    else:
        conn.execute(stmt.on_conflict_do_nothing(index_elements=keys))


def upsert_many(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
    where: ColumnElement[bool] | None = None,
) -> None:
    """`upsert` of many rows (all with the same columns) in one executemany statement."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    set_ = {name: stmt.excluded[name] for name in update}
    conn.execute(
        stmt.on_conflict_do_update(index_elements=keys, set_=set_, where=where),
        [dict(row) for row in rows],
    )
