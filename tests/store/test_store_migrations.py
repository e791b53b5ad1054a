"""Migrations: applied on open, idempotent, safe under concurrent openers, match the code."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from store_support import new_run

from rlm_engine.store import SqlStore, open_store
from rlm_engine.store.connect import create_store_engine
from rlm_engine.store.migrate import (
    HEAD_REVISION,
    _config,  # pyright: ignore[reportPrivateUsage]
    current_revision,
    script_head,
    upgrade,
)
from rlm_engine.store.tables import metadata

TABLES = {"sessions", "runs", "nodes", "cells", "events", "memory", "contexts"}


def test_opening_migrates_to_head(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        assert current_revision(conn) == HEAD_REVISION
        assert set(sa.inspect(conn).get_table_names()) >= TABLES


def test_migrating_again_is_a_no_op(store: SqlStore, store_url: str, store_home: Path) -> None:
    new_run(store)
    upgrade(store.engine)
    upgrade(store.engine)
    again = open_store(store_url, store_home)
    try:
        assert [r.run_id for r in again.list_runs()] == ["run-1"]
        with again.engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(HEAD_REVISION,)]
    finally:
        again.close()


def test_migrated_schema_matches_the_tables_the_code_uses(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_concurrent_first_opens_migrate_once(store_url: str, tmp_path: Path) -> None:
    # Separate engines, so separate connections: the same locking as separate processes.
    barrier = threading.Barrier(4)
    results: list[object] = []

    def open_at_once(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            opened = open_store(store_url, tmp_path / f"home{i}")
            results.append(len(opened.list_runs()))
            opened.close()
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=open_at_once, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [0, 0, 0, 0]
    store = open_store(store_url, tmp_path / "home")
    try:
        with store.engine.connect() as conn:
            assert current_revision(conn) == HEAD_REVISION
    finally:
        store.close()


def test_legacy_run_log_tables_are_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    legacy = sqlite3.connect(path)
    legacy.executescript(
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, question TEXT);"
        "CREATE TABLE events (run_id TEXT, seq INTEGER, body TEXT);"
        "INSERT INTO runs VALUES ('old', 'q');"
    )
    legacy.commit()
    legacy.close()
    store = open_store(f"sqlite:///{path}", tmp_path)
    try:
        assert store.list_runs() == []
        with store.engine.connect() as conn:
            kept = conn.execute(sa.text("SELECT run_id FROM legacy_runs_v0")).all()
        assert kept == [("old",)]
    finally:
        store.close()


def test_sqlite_store_is_durable_by_configuration(tmp_path: Path) -> None:
    store = open_store(None, tmp_path)
    try:
        assert (tmp_path / "rlm.db").exists()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()


def test_head_constant_names_the_newest_script() -> None:
    assert script_head() == HEAD_REVISION


def test_the_scripts_build_the_schema_a_fresh_store_is_created_with(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        upgrade(engine, fresh_without_alembic=False)  # every script, as an old store gets
        with engine.connect() as conn:
            assert current_revision(conn) == HEAD_REVISION
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_a_fresh_store_is_created_without_alembic_and_alembic_accepts_it(
    store_url: str,
) -> None:
    code = (
        "import sys\n"
        "from rlm_engine.store.connect import create_store_engine\n"
        "from rlm_engine.store.migrate import upgrade\n"
        f"upgrade(create_store_engine({store_url!r}))\n"
        "print('alembic' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
    engine = create_store_engine(store_url)
    try:
        with engine.begin() as conn:  # Alembic finds it at head and does nothing
            command.upgrade(_config(conn), "head")
        with engine.connect() as conn:
            assert current_revision(conn) == HEAD_REVISION
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            assert versions == [(HEAD_REVISION,)]
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
