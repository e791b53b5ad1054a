"""The store's schema as SQLAlchemy Core tables (what the queries use).

The migrations in `migrations/versions/` create exactly this schema; a contract test checks
that the two agree. Timestamps are float seconds since the epoch, like the events' `ts`.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

metadata = MetaData()
# Rows recorded before tenants existed belong to the local tenant.
_LOCAL = text("'local'")

sessions = Table(
    "sessions",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    # Session names are unique across tenants (the service generates them); the tenant
    # says whose it is.
    Column("tenant", String(200), nullable=False, server_default=_LOCAL),
    Index("ix_sessions_tenant_updated_at", "tenant", "updated_at"),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(100), primary_key=True),
    Column("session", String(200), ForeignKey("sessions.name", ondelete="SET NULL")),
    Column("question", Text, nullable=False),
    Column("model", String(200), nullable=False),
    Column("sub_model", String(200), nullable=False),
    Column("settings", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("stop_reason", String(100)),
    Column("detail", Text),
    Column("answer", Text),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("cost_usd", Double),
    Column("sub_calls", Integer, nullable=False),
    Column("iterations", Integer, nullable=False),
    Column("context_hash", String(64)),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("finished_at", Double),
    # Who runs it: a run whose owner is gone while still "running" was interrupted.
    Column("owner_host", String(255)),
    Column("owner_pid", Integer),
    Column("owner_token", String(100)),
    Column("heartbeat_at", Double),
    Column("attempt", Integer, nullable=False),
    # The last event sequence number handed out; appends bump it under a row lock.
    Column("last_event_seq", Integer, nullable=False),
    # What recorded it: a resume under another engine or settings shape is warned or refused.
    Column("engine_version", String(50)),
    Column("settings_version", Integer),
    # Why it failed (`store.run_rules.FailureKind`): decides whether it can be resumed.
    Column("failure_kind", String(30)),
    # The error of the last resume attempt that failed and left the run as it was.
    Column("last_error", Text),
    Column("tenant", String(200), nullable=False, server_default=_LOCAL),
    # Who in the tenant asked for it: a run resumed by another process acts for them.
    Column("principal_user", String(200)),
    # The queue resumes it by itself once its process is gone.
    Column("auto_resume", Boolean, nullable=False, server_default=false()),
    # Asked to stop while running: the owner sees it at its next heartbeat.
    Column("cancel_requested", Boolean, nullable=False, server_default=false()),
    Index("ix_runs_created_at", "created_at"),
    Index("ix_runs_status", "status"),
    Index("ix_runs_session", "session"),
    Index("ix_runs_tenant_created_at", "tenant", "created_at"),
)

nodes = Table(
    "nodes",
    metadata,
    Column(
        "run_id",
        String(100),
        ForeignKey("runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("node_id", String(300), primary_key=True),
    Column("parent_id", String(300)),
    Column("kind", String(20), nullable=False),
    Column("model", String(200)),
    Column("status", String(20), nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("cost_usd", Double),
    Column("latency_s", Double),
    Column("request_hash", String(64)),
    # Texts live inline when short, else in the blob store under *_ref.
    Column("request_text", Text),
    Column("request_ref", String(64)),
    Column("response_text", Text),
    Column("response_ref", String(64)),
    Column("response_chars", Integer),
    Column("error", Text),
    Column("meta", JSON, nullable=False),
    Column("started_at", Double, nullable=False),
    Column("finished_at", Double),
)

cells = Table(
    "cells",
    metadata,
    Column("artifact_id", String(500), primary_key=True),
    Column("run_id", String(100), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("node_id", String(300), nullable=False),
    Column("iteration", Integer, nullable=False),
    Column("cell_index", Integer, nullable=False),
    Column("instruction", Text),
    Column("code", Text, nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("output_text", Text),
    Column("output_ref", String(64)),
    Column("output_hash", String(64)),
    Column("output_chars", Integer),
    Column("error", Text),
    Column("meta", JSON, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("started_at", Double),
    Column("finished_at", Double),
    UniqueConstraint("run_id", "node_id", "iteration", "cell_index", name="uq_cells_position"),
)

events = Table(
    "events",
    metadata,
    Column(
        "run_id",
        String(100),
        ForeignKey("runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True),
    Column("type", String(50), nullable=False),
    Column("node_id", String(300), nullable=False),
    Column("depth", Integer, nullable=False),
    Column("ts", Double, nullable=False),
    Column("body", JSON, nullable=False),
)

memory = Table(
    "memory",
    metadata,
    Column("scope_kind", String(20), primary_key=True),
    Column("scope_name", String(200), primary_key=True),
    Column("key", String(300), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", Double, nullable=False),
)

contexts = Table(
    "contexts",
    metadata,
    Column("content_hash", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("kind", String(50), nullable=False),
    Column("path", Text),
    Column("blob_ref", String(64)),
    Column("meta", JSON, nullable=False),
    Column("created_at", Double, nullable=False),
)

response_cache = Table(
    "response_cache",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("model", String(200), nullable=False),
    Column("text", Text, nullable=False),
    Column("finish_reason", String(50)),
    Column("provider", String(100), nullable=False),
    Column("hits", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("used_at", Double, nullable=False),
    Index("ix_response_cache_model", "model"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(100), primary_key=True),
    Column("tenant", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    # sha256 of the secret: the secret itself is shown once and never stored.
    Column("secret_hash", String(128), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("revoked_at", Double),
    Index("ix_api_keys_tenant", "tenant"),
)
