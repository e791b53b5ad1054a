"""Initial schema: sessions, runs, nodes, cells, events, memory, contexts.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _rename_legacy_run_log() -> None:
    # Before this store existed, a plain run log wrote `runs` and `events` tables without
    # Alembic. Keep that history under other names instead of failing on the clash.
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    for name in ("runs", "events"):
        if name in tables:
            op.rename_table(name, f"legacy_{name}_v0")


def upgrade() -> None:
    _rename_legacy_run_log()
    op.create_table(
        "sessions",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(100), primary_key=True),
        sa.Column("session", sa.String(200), sa.ForeignKey("sessions.name", ondelete="SET NULL")),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("sub_model", sa.String(200), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stop_reason", sa.String(100)),
        sa.Column("detail", sa.Text),
        sa.Column("answer", sa.Text),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Double),
        sa.Column("sub_calls", sa.Integer, nullable=False),
        sa.Column("iterations", sa.Integer, nullable=False),
        sa.Column("context_hash", sa.String(64)),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double),
        sa.Column("owner_host", sa.String(255)),
        sa.Column("owner_pid", sa.Integer),
        sa.Column("owner_token", sa.String(100)),
        sa.Column("heartbeat_at", sa.Double),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("last_event_seq", sa.Integer, nullable=False),
    )
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_session", "runs", ["session"])
    op.create_table(
        "nodes",
        sa.Column(
            "run_id",
            sa.String(100),
            sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("node_id", sa.String(300), primary_key=True),
        sa.Column("parent_id", sa.String(300)),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("model", sa.String(200)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Double),
        sa.Column("latency_s", sa.Double),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("request_text", sa.Text),
        sa.Column("request_ref", sa.String(64)),
        sa.Column("response_text", sa.Text),
        sa.Column("response_ref", sa.String(64)),
        sa.Column("response_chars", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double),
    )
    op.create_table(
        "cells",
        sa.Column("artifact_id", sa.String(500), primary_key=True),
        sa.Column(
            "run_id",
            sa.String(100),
            sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("node_id", sa.String(300), nullable=False),
        sa.Column("iteration", sa.Integer, nullable=False),
        sa.Column("cell_index", sa.Integer, nullable=False),
        sa.Column("instruction", sa.Text),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("output_text", sa.Text),
        sa.Column("output_ref", sa.String(64)),
        sa.Column("output_hash", sa.String(64)),
        sa.Column("output_chars", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("started_at", sa.Double),
        sa.Column("finished_at", sa.Double),
        sa.UniqueConstraint(
            "run_id", "node_id", "iteration", "cell_index", name="uq_cells_position"
        ),
    )
    op.create_table(
        "events",
        sa.Column(
            "run_id",
            sa.String(100),
            sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("node_id", sa.String(300), nullable=False),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
    )
    op.create_table(
        "memory",
        sa.Column("scope_kind", sa.String(20), primary_key=True),
        sa.Column("scope_name", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_table(
        "contexts",
        sa.Column("content_hash", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("path", sa.Text),
        sa.Column("blob_ref", sa.String(64)),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    for name in ("contexts", "memory", "events", "cells", "nodes", "runs", "sessions"):
        op.drop_table(name)
