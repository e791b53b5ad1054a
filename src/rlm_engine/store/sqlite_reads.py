"""Reading the default SQLite store with the standard library's `sqlite3` alone.

Loading SQLAlchemy costs a command that only lists runs most of its time. For the default
store (a SQLite file under ``RLM_HOME``) ``rlm runs list`` reads the runs here instead:
the same statement the SQL store runs (`run_rows.run_list_sql`), sent on a plain
connection, with the same rows-to-records mapping. It answers only what it can answer
exactly; otherwise (no file yet, a schema not at the current revision, a running run whose
process is gone and must first be marked interrupted) it returns None and the caller opens
the full store, which creates, migrates or marks as it always does.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from rlm_engine.store.records import Run, RunStatus
from rlm_engine.store.run_rows import RUNNING_OWNERS_SQL, owner_gone, run_list_sql, to_run

DB_FILENAME = "rlm.db"
"""The default store: this file in ``RLM_HOME``."""
HEAD_REVISION = "0005"
"""The newest migration script's revision. Checked against the scripts by a test; lets an
up-to-date store open without importing Alembic, and be read without SQLAlchemy."""
VERSION_TABLE = "alembic_version"
BUSY_TIMEOUT_S = 30.0
"""How long a SQLite connection waits for another's lock."""
STALE_AFTER_S = 120.0
"""A running run of another host with no heartbeat for this long was interrupted (the
default of `Store.mark_interrupted_runs`)."""


def sqlite_path(home: Path) -> Path:
    """Where the default store of ``home`` (``RLM_HOME``) keeps its database."""
    return home.expanduser() / DB_FILENAME


def list_runs_plain(
    path: Path,
    limit: int,
    *,
    status: RunStatus | None = None,
    session: str | None = None,
    tenant: str | None = None,
    stale_after_s: float = STALE_AFTER_S,
) -> list[Run] | None:
    """`Store.list_runs` of the SQLite store at ``path``, after the check that
    `Store.mark_interrupted_runs` makes, in one read transaction; None when only the full
    store can answer (see the module's docstring)."""
    if not path.is_file():
        return None
    try:
        # mode=rw: never creates the file (that is the full store's job, with its schema).
        conn = sqlite3.connect(
            f"file:{path}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None
        )
    except sqlite3.Error:
        return None
    try:
        conn.execute("BEGIN")  # one snapshot for the checks and the page
        try:
            revision = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
        except sqlite3.OperationalError:
            return None  # never migrated
        if revision != [(HEAD_REVISION,)]:
            return None
        now = time.time()
        owners = conn.execute(RUNNING_OWNERS_SQL)
        names = [d[0] for d in owners.description]
        for row in owners:
            if owner_gone(dict(zip(names, row, strict=True)), now, stale_after_s):
                return None
        sql, params = run_list_sql(limit, status, session, tenant)
        page = conn.execute(sql, params)
        names = [d[0] for d in page.description]
        return [to_run(dict(zip(names, row, strict=True))) for row in page]
    except sqlite3.Error:
        return None  # the full store reports what is wrong, with its hint
    finally:
        conn.close()
