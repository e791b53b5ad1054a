"""Alembic environment, loaded by Alembic only: migrate on the connection the store passes."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from rlm_engine.store.tables import metadata


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "rlm-engine migrations run when a store is opened (rlm_engine.store.open_store), "
            "not from the alembic command line"
        )
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


_run_online()
