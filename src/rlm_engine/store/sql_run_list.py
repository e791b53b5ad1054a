"""Listing and counting runs: newest first, filtered, paged by a (created_at, run_id)
cursor, each with its journal totals in the same statement (`run_rows.run_list_sql`, which
``rlm runs list`` also runs on a plain `sqlite3` connection)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import TextClause, func, select, text

from rlm_engine.store.records import Run, RunStatus
from rlm_engine.store.run_rows import run_list_sql, to_run
from rlm_engine.store.sql_base import SqlDb
from rlm_engine.store.tables import runs


def list_runs_query(
    limit: int,
    status: RunStatus | None = None,
    session: str | None = None,
    tenant: str | None = None,
    before: tuple[float, str] | None = None,
) -> TextClause:
    """One page of runs, newest first, with their journal totals (one statement)."""
    sql, params = run_list_sql(limit, status, session, tenant, before)
    return text(sql).bindparams(**params)


def list_runs(
    db: SqlDb,
    limit: int,
    status: RunStatus | None,
    session: str | None,
    tenant: str | None = None,
    before: tuple[float, str] | None = None,
) -> list[Run]:
    query = list_runs_query(limit, status, session, tenant, before)
    with db.read() as conn:
        return [to_run(row) for row in conn.execute(query).mappings()]


def count_runs(db: SqlDb, tenant: str | None, statuses: Collection[RunStatus]) -> int:
    query = select(func.count()).select_from(runs).where(runs.c.status.in_(sorted(statuses)))
    if tenant is not None:
        query = query.where(runs.c.tenant == tenant)
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())
