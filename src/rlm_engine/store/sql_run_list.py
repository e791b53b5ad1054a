"""Listing and counting runs: newest first, filtered, paged by a (created_at, run_id)
cursor, each with its journal totals in the same statement."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Select, and_, func, or_, select

from rlm_engine.store.records import Run, RunStatus
from rlm_engine.store.sql_base import SqlDb
from rlm_engine.store.sql_run_totals import with_journal_totals
from rlm_engine.store.sql_runs import to_run
from rlm_engine.store.tables import runs


def list_runs_query(
    limit: int,
    status: RunStatus | None = None,
    session: str | None = None,
    tenant: str | None = None,
    before: tuple[float, str] | None = None,
) -> Select[Any]:
    """One page of runs, newest first, with their journal totals (one statement)."""
    query = select(runs).order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit)
    if status is not None:
        query = query.where(runs.c.status == status)
    if session is not None:
        query = query.where(runs.c.session == session)
    if tenant is not None:
        query = query.where(runs.c.tenant == tenant)
    if before is not None:
        # Keyset pagination: strictly older than the cursor's (created_at, run_id), spelled
        # out so both backends use the (tenant, created_at) / (created_at) indexes.
        created, run_id = before
        query = query.where(
            or_(
                runs.c.created_at < created,
                and_(runs.c.created_at == created, runs.c.run_id < run_id),
            )
        )
    return with_journal_totals(query, newest_first=True)


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
