"""Tenants own runs and sessions; runs can wait in a queue, resume by themselves and be
asked to cancel; API keys (hashed) say which tenant a request is for.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

# What existing rows get: they were all recorded by the local tenant.
_LOCAL = sa.text("'local'")


def upgrade() -> None:
    # batch mode: SQLite cannot drop columns in place on downgrade; adding NOT NULL columns
    # with a default is a plain ALTER on both backends.
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("tenant", sa.String(200), nullable=False, server_default=_LOCAL))
        batch.add_column(
            sa.Column("auto_resume", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.create_index("ix_runs_tenant_created_at", ["tenant", "created_at"])
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("tenant", sa.String(200), nullable=False, server_default=_LOCAL))
        batch.create_index("ix_sessions_tenant_updated_at", ["tenant", "updated_at"])
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(100), primary_key=True),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("revoked_at", sa.Double),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_tenant", table_name="api_keys")
    op.drop_table("api_keys")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index("ix_sessions_tenant_updated_at")
        batch.drop_column("tenant")
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_tenant_created_at")
        for name in ("cancel_requested", "auto_resume", "tenant"):
            batch.drop_column(name)
