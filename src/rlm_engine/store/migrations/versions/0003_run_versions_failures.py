"""Runs record the engine version and settings shape they were made with, the kind of
failure that stopped them, and the error of their last failed resume attempt.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_COLUMNS = ("engine_version", "settings_version", "failure_kind", "last_error")


def upgrade() -> None:
    # batch mode: SQLite cannot drop columns in place on downgrade; adding is plain ALTER.
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("engine_version", sa.String(50)))
        batch.add_column(sa.Column("settings_version", sa.Integer))
        batch.add_column(sa.Column("failure_kind", sa.String(30)))
        batch.add_column(sa.Column("last_error", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
