"""The durable run queue: claiming the next run to execute, and asking a run to cancel.

Several processes (and threads) poll the same store; a run is claimed by exactly one of
them. Postgres: the candidate row is locked `FOR UPDATE SKIP LOCKED`, so concurrent
claimers pass over each other's rows instead of queueing behind them. SQLite: the write
transaction (`BEGIN IMMEDIATE`) already admits one claimer at a time. On both, the UPDATE
repeats the candidate's status as a condition and its row count says who won; a claimer
that lost tries the next candidate.

`claim_batch` takes several runs in one transaction (one scan for dead owners, one
grouped count of each tenant's running runs, one commit), so a process with many free
slots fills them in one step rather than one run per round trip.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, false, func, or_, select, update

from rlm_engine.store.errors import RunNotFoundError
from rlm_engine.store.records import Run
from rlm_engine.store.run_rules import CANCELLED_DETAIL
from rlm_engine.store.sql_base import SqlDb
from rlm_engine.store.sql_run_totals import with_journal_totals
from rlm_engine.store.sql_runs import mark_interrupted, owned_by_me, select_run, to_run
from rlm_engine.store.tables import runs


def _claimable(tenants_full: Collection[str]) -> list[ColumnElement[bool]]:
    """Queued runs, and interrupted ones the queue resumes by itself; never a run someone
    asked to cancel, nor one of a tenant at its concurrency limit."""
    conditions = [
        or_(
            runs.c.status == "queued",
            and_(runs.c.status == "interrupted", runs.c.auto_resume),
        ),
        runs.c.cancel_requested == false(),
    ]
    if tenants_full:
        conditions.append(runs.c.tenant.not_in(sorted(tenants_full)))
    return conditions


def _claim_values(db: SqlDb, status: str, now: float) -> dict[str, Any]:
    values: dict[str, Any] = {
        "status": "running",
        "stop_reason": None,
        "detail": None,
        "failure_kind": None,
        "finished_at": None,
        "updated_at": now,
        **owned_by_me(db, now),
    }
    if status == "interrupted":  # a resume: the queued run's first attempt is still to come
        values["attempt"] = runs.c.attempt + 1
    return values


def claim_next(db: SqlDb, stale_after_s: float, tenants_full: Collection[str]) -> Run | None:
    claimed = claim_batch(db, 1, stale_after_s, None, excluded=tenants_full)
    return claimed[0] if claimed else None


def _take(
    db: SqlDb, conn: Connection, run_id: str, status: str, conditions: list[ColumnElement[bool]]
) -> bool:
    """Make a candidate ours; False if another claimer took (or cancelled) it first."""
    won = conn.execute(
        update(runs)
        .where(runs.c.run_id == run_id, runs.c.status == status, *conditions)
        .values(_claim_values(db, status, db.now()))
    )
    return won.rowcount == 1


def running_by_tenant(conn: Connection) -> dict[str, int]:
    """How many runs each tenant has running (in every process): one grouped count."""
    query = (
        select(runs.c.tenant, func.count())
        .where(runs.c.status == "running")
        .group_by(runs.c.tenant)
    )
    return {str(tenant): int(n) for tenant, n in conn.execute(query)}


def count_running_by_tenant(db: SqlDb) -> dict[str, int]:
    with db.read() as conn:
        return running_by_tenant(conn)


def claim_batch(
    db: SqlDb,
    limit: int,
    stale_after_s: float,
    tenant_limit: int | None,
    *,
    excluded: Collection[str] = (),
) -> list[Run]:
    """Up to ``limit`` runs claimed in one write transaction, oldest first, with no tenant
    taken past ``tenant_limit`` runs running (those already running anywhere counted in
    the same transaction, so one batch cannot overshoot a tenant either), and none of the
    ``excluded`` tenants'."""
    if limit <= 0:
        return []
    mark_interrupted(db, stale_after_s)
    claimed: list[str] = []
    with db.write() as conn:
        running = running_by_tenant(conn) if tenant_limit is not None else {}
        passed: list[str] = []  # lost to another claimer, or of a tenant filled meanwhile
        while len(claimed) < limit:
            full = {t for t, n in running.items() if tenant_limit is not None and n >= tenant_limit}
            conditions = _claimable(full | set(excluded))
            query = (
                select(runs.c.run_id, runs.c.status, runs.c.tenant)
                .where(*conditions)
                .order_by(runs.c.created_at, runs.c.run_id)
                .limit(limit - len(claimed))
                .with_for_update(skip_locked=True)
            )
            if passed:
                query = query.where(runs.c.run_id.not_in(passed))
            candidates = list(conn.execute(query).mappings())
            if not candidates:
                break
            for candidate in candidates:
                run_id: str = candidate["run_id"]
                tenant: str = candidate["tenant"]
                if tenant_limit is not None and running.get(tenant, 0) >= tenant_limit:
                    passed.append(run_id)  # its tenant filled up earlier in this batch
                    continue
                if not _take(db, conn, run_id, candidate["status"], conditions):
                    passed.append(run_id)
                    continue
                claimed.append(run_id)
                running[tenant] = running.get(tenant, 0) + 1
        if not claimed:
            return []
        rows = conn.execute(
            with_journal_totals(select(runs).where(runs.c.run_id.in_(claimed)), newest_first=False)
        ).mappings()
        found = {row["run_id"]: to_run(row) for row in rows}
    return [found[run_id] for run_id in claimed]


def request_cancel(db: SqlDb, run_id: str) -> Run:
    now = db.now()
    with db.write() as conn:
        status = conn.execute(
            select(runs.c.status).where(runs.c.run_id == run_id).with_for_update()
        ).scalar()
        if status is None:
            raise RunNotFoundError(run_id)
        if status in ("queued", "interrupted"):
            # Nobody runs it: cancelled at once, and the queue will not start or resume it.
            values: dict[str, Any] = {
                "status": "cancelled",
                "stop_reason": "cancelled",
                "detail": CANCELLED_DETAIL,
                "failure_kind": None,
                "finished_at": now,
                "updated_at": now,
            }
        elif status == "running":
            values = {"cancel_requested": True, "updated_at": now}
        else:
            values = {}
        if values:
            conn.execute(update(runs).where(runs.c.run_id == run_id).values(values))
        return to_run(conn.execute(select_run(run_id)).mappings().one())
