"""SQLAlchemy engines for the store's backends, configured for durability.

SQLite: WAL (readers never block the writer), `synchronous=FULL` (a committed transaction
survives power loss), foreign keys on, a generous busy timeout, and write transactions that
start with `BEGIN IMMEDIATE` so concurrent writers queue instead of failing. Postgres: psycopg 3.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from rlm_engine.errors import ConfigurationError, MissingExtraError
from rlm_engine.store.sqlite_reads import BUSY_TIMEOUT_S

# Execution option marking a connection whose transaction only reads.
READ_ONLY = "rlm_read_only"


def _enable_wal(raw: sqlite3.Connection) -> None:
    # WAL is a property of the file: once set it stays. Switching a fresh file to it needs an
    # exclusive lock, and SQLite reports "locked" at once (no busy wait) while another
    # connection is opening the same new file, so wait for our turn here.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            if raw.execute("PRAGMA journal_mode").fetchone() == ("wal",):
                return
            raw.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if in_memory:
        # One shared connection, or every connection would see its own empty database.
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:  # pyright: ignore[reportUnusedFunction]
        raw = cast(sqlite3.Connection, dbapi_connection)
        # Let the begin hook below issue BEGIN, instead of the driver's implicit deferred one.
        raw.isolation_level = None
        raw.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        _enable_wal(raw)
        raw.execute("PRAGMA synchronous=FULL")
        raw.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:  # pyright: ignore[reportUnusedFunction]
        # A deferred transaction that later writes can fail with SQLITE_BUSY without waiting;
        # taking the write lock up front makes writers wait their turn (busy_timeout).
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: URL) -> Engine:
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername == "postgresql+psycopg":
        try:
            import psycopg  # noqa: F401  # pyright: ignore[reportUnusedImport]
        except ImportError:
            raise MissingExtraError("The Postgres store", "postgres", "psycopg") from None
    return create_engine(url, pool_pre_ping=True)


_BACKENDS: dict[str, Callable[[URL], Engine]] = {
    "sqlite": _sqlite_engine,
    "postgresql": _postgres_engine,
    "postgres": _postgres_engine,
}


def create_store_engine(url: str) -> Engine:
    """A configured engine for a store URL (`sqlite:///path`, `postgresql+psycopg://...`)."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigurationError(f"RLM_STORE_URL is not a database URL: {exc}") from None
    factory = _BACKENDS.get(parsed.get_backend_name())
    if factory is None:
        raise ConfigurationError(
            f"unsupported store backend {parsed.get_backend_name()!r}: "
            "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        )
    return factory(parsed)


def display_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)
