"""Schema migrations with Alembic, configured in code and applied when a store opens.

The scripts ship inside the package (`migrations/`), so no `alembic.ini` is needed. Upgrading
runs in one transaction that first takes a lock (SQLite: `BEGIN IMMEDIATE`; Postgres: an
advisory lock per schema), so processes opening the same store at once migrate it exactly
once; the others then find it at head, and upgrading an up-to-date store changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from rlm_engine.store.connect import READ_ONLY

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest script's revision. Checked against the scripts by a test; lets an up-to-date
# store open without importing Alembic at all (which costs about half a second).
HEAD_REVISION = "0002"
VERSION_TABLE = "alembic_version"
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


def upgrade(engine: Engine) -> None:
    """Bring the schema to head; safe to call from many processes at once."""
    with engine.connect() as conn:
        conn.execution_options(**{READ_ONLY: True})
        if current_revision(conn) == HEAD_REVISION:
            return
    from alembic import command

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:name || current_schema()))"),
                {"name": _LOCK_NAME},
            )
        # Whoever held the lock before us may have migrated already: Alembic re-reads the
        # version inside this transaction and does nothing if it is at head.
        command.upgrade(_config(conn), "head")
