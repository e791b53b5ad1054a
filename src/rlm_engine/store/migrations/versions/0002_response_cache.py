"""Persistent response cache: replies to deterministic model calls, by request key.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "response_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("finish_reason", sa.String(50)),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("hits", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("used_at", sa.Double, nullable=False),
    )
    op.create_index("ix_response_cache_model", "response_cache", ["model"])


def downgrade() -> None:
    op.drop_index("ix_response_cache_model", table_name="response_cache")
    op.drop_table("response_cache")
