"""Shared plumbing of the SQL store: transactions, inline-or-blob texts, portable upserts."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import JSON, ColumnElement, Connection, Engine, RowMapping, Table

from rlm_engine.store.blobs import BlobStore, sha256_text
from rlm_engine.store.connect import READ_ONLY
from rlm_engine.store.owner import ProcessOwner, current_owner, refresh_owner
from rlm_engine.store.write_errors import store_write_error

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
        """One write transaction (on SQLite `BEGIN IMMEDIATE`: writers queue, never deadlock).

        A write the database refuses (disk full, read-only, locked past the busy timeout)
        raises `StoreWriteError`; the transaction is rolled back, so nothing already
        committed is touched."""
        try:
            if self._write_lock is None:
                with self.engine.begin() as conn:
                    yield conn
                return
            with self._write_lock, self.engine.begin() as conn:
                yield conn
        except Exception as exc:
            mapped = store_write_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

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
    # Only the connection's dialect is imported (the engine has loaded it already): a
    # SQLite store never pays for the PostgreSQL dialect and its drivers' modules.
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).values(dict(values))
    if update:
        set_ = {name: stmt.excluded[name] for name in update}
        conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=set_, where=where))
    else:
        conn.execute(stmt.on_conflict_do_nothing(index_elements=keys))


# Keys per `IN (...)` list: well under every backend's limit on bound parameters.
IN_CHUNK = 500


def select_in(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    where: Mapping[str, Any],
    key: str,
    values: Sequence[Any],
) -> list[RowMapping]:
    """``SELECT columns FROM table`` where each ``where`` column equals its value and
    ``key`` is one of ``values``, in driver-level SQL built once per shape: the group
    commit reads the rows it is about to write on every commit, and compiling the Core
    query cost more than the commit's fsync. JSON columns come back as the driver gives
    them (text on SQLite)."""
    rows: list[RowMapping] = []
    fixed = tuple(where)
    for start in range(0, len(values), IN_CHUNK):
        chunk = values[start : start + IN_CHUNK]
        sql = _select_in_sql(conn.dialect.name, table, tuple(columns), fixed, key, len(chunk))
        rows += conn.exec_driver_sql(sql, (*where.values(), *chunk)).mappings()
    return rows


@functools.lru_cache(maxsize=128)
def _select_in_sql(
    dialect: str, table: str, columns: tuple[str, ...], fixed: tuple[str, ...], key: str, count: int
) -> str:
    mark = param_mark(dialect)
    conditions = [f"{c} = {mark}" for c in fixed] + [f"{key} IN ({', '.join([mark] * count)})"]
    return f"SELECT {', '.join(columns)} FROM {table} WHERE {' AND '.join(conditions)}"


def param_mark(dialect: str) -> str:
    """The driver's placeholder for a bound parameter (psycopg's or sqlite3's)."""
    return "%s" if dialect == "postgresql" else "?"


# Bound parameters per multi-row statement: under every backend's limit.
MULTI_ROW_PARAMS = 20_000


def upsert_many(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str] = (),
    update: Sequence[str] = (),
    where: str | None = None,
) -> None:
    """INSERT many rows (all with the same columns) in multi-row statements; with ``keys``,
    on a key conflict UPDATE the ``update`` columns (if the SQL condition ``where`` holds).

    Values of JSON columns must be JSON text already. One ``INSERT ... VALUES (...), (...)``
    rather than an executemany, whose driver steps (and releases the GIL for) every row: a
    thread that gives the GIL up while the event loop is busy waits up to the interpreter's
    switch interval (5 ms) to get it back, so a writer thread paid that per row. The SQL
    is built once per shape and cached; no per-row work is left to SQLAlchemy.
    """
    if not rows:
        return
    columns = tuple(rows[0])
    per = max(1, MULTI_ROW_PARAMS // len(columns))
    json_columns = frozenset(c.name for c in table.columns if isinstance(c.type, JSON))
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        sql = _multi_row_sql(
            conn.dialect.name,
            table.name,
            columns,
            json_columns,
            len(chunk),
            tuple(keys),
            tuple(update),
            where,
        )
        params = tuple(row[c] for row in chunk for c in columns)
        conn.exec_driver_sql(sql, params)


@functools.lru_cache(maxsize=512)
def _multi_row_sql(
    dialect: str,
    table: str,
    columns: tuple[str, ...],
    json_columns: frozenset[str],
    count: int,
    keys: tuple[str, ...],
    update: tuple[str, ...],
    where: str | None,
) -> str:
    if dialect == "postgresql":
        marks = [("CAST(%s AS JSON)" if c in json_columns else "%s") for c in columns]
    else:
        marks = [param_mark(dialect)] * len(columns)
    one = "(" + ", ".join(marks) + ")"
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([one] * count)
    if keys and update:
        sets = ", ".join(f"{c} = excluded.{c}" for c in update)
        sql += f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
        if where is not None:
            sql += f" WHERE {where}"
    elif keys:
        sql += f" ON CONFLICT ({', '.join(keys)}) DO NOTHING"
    return sql
