"""Schema migrations with Alembic, configured in code and applied when a store opens.

The scripts ship inside the package (`migrations/`), so no `alembic.ini` is needed. Upgrading
runs in one transaction that first takes a lock (SQLite: `BEGIN IMMEDIATE`; Postgres: an
advisory lock per schema), so processes opening the same store at once migrate it exactly
once; the others then find it at head, and upgrading an up-to-date store changes nothing.

A database with no tables at all (a fresh store) is created from the tables the code uses
and stamped at head, without loading Alembic; a test checks that this schema is the one
the scripts build.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from rlm_engine.store.connect import READ_ONLY
from rlm_engine.store.sqlite_reads import HEAD_REVISION, VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# HEAD_REVISION: the newest script's revision. Checked against the scripts by a test; lets
# an up-to-date store open without importing Alembic at all (which costs about half a
# second). Kept where the plain `sqlite3` reader checks it too.
_LOCK_NAME = "rlm_engine.store.migrate:"


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def script_head() -> str | None:
    """The revision the shipped scripts lead to (loads the scripts)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision a database is at (None: never migrated)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def _lock(conn: Connection) -> None:
    """Serialize migrations of one schema (SQLite: the write transaction already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:name || current_schema()))"),
            {"name": _LOCK_NAME},
        )


def create_fresh(engine: Engine) -> bool:
    """Create the schema at head in a database that has no tables, without Alembic;
    False (and nothing done) if it has any table, e.g. created meanwhile by another
    process."""
    from rlm_engine.store.tables import metadata

    with engine.begin() as conn:
        _lock(conn)
        if inspect(conn).get_table_names():
            return False
        metadata.create_all(conn)
        # The table Alembic keeps its revision in, as Alembic creates it.
        conn.execute(
            text(
                f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
                f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"
            )
        )
        conn.execute(
            text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:head)"),
            {"head": HEAD_REVISION},
        )
    return True


def upgrade(engine: Engine, *, fresh_without_alembic: bool = True) -> None:
    """Bring the schema to head; safe to call from many processes at once."""
    with engine.connect() as conn:
        conn.execution_options(**{READ_ONLY: True})
        revision = current_revision(conn)
        if revision == HEAD_REVISION:
            return
        empty = revision is None and not inspect(conn).get_table_names()
    if empty and fresh_without_alembic and create_fresh(engine):
        return
    from alembic import command

    with engine.begin() as conn:
        _lock(conn)
        # Whoever held the lock before us may have migrated already: Alembic re-reads the
        # version inside this transaction and does nothing if it is at head.
        command.upgrade(_config(conn), "head")
