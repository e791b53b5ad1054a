"""Runs: creation, progress, terminal states, interruption detection and claiming for resume
(listing: `sql_run_list`; the queue: `sql_queue`)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import RowMapping, Select, case, delete, select, text, update
from sqlalchemy.exc import IntegrityError

from rlm_engine.store.errors import JournalConflictError, RunNotFoundError, RunNotResumableError
from rlm_engine.store.records import NewRun, Run, RunStatus, RunTotals
from rlm_engine.store.run_rows import RUNNING_OWNERS_SQL, owner_gone, to_run
from rlm_engine.store.run_rules import CANCELLED_DETAIL, INTERRUPTED_DETAIL, resume_refusal
from rlm_engine.store.sql_base import SqlDb
from rlm_engine.store.sql_run_totals import with_journal_totals
from rlm_engine.store.sql_sessions import ensure_session
from rlm_engine.store.tables import cells, events, nodes, runs, sessions


def _totals(totals: RunTotals) -> dict[str, Any]:
    return {
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "cached_tokens": totals.cached_tokens,
        "cost_usd": totals.cost_usd,
        "sub_calls": totals.sub_calls,
        "iterations": totals.iterations,
    }


def owned_by_me(db: SqlDb, now: float) -> dict[str, Any]:
    owner = db.owner
    return {
        "owner_host": owner.host,
        "owner_pid": owner.pid,
        "owner_token": owner.token,
        "heartbeat_at": now,
    }


def create_run(db: SqlDb, new: NewRun) -> Run:
    now = db.now()
    created = new.created_at if new.created_at is not None else now
    values: dict[str, Any] = {
        "run_id": new.run_id,
        "session": new.session,
        "question": new.question,
        "model": new.model,
        "sub_model": new.sub_model,
        "settings": dict(new.settings),
        "status": "queued" if new.queued else "running",
        "tenant": new.tenant,
        "principal_user": new.user,
        "auto_resume": new.auto_resume,
        "cancel_requested": False,
        "context_hash": new.context_hash,
        "engine_version": new.engine_version,
        "settings_version": new.settings_version,
        "created_at": created,
        "updated_at": now,
        "attempt": 1,
        "last_event_seq": -1,
        **_totals(RunTotals()),
        # A queued run has no owner until the queue claims it.
        **({} if new.queued else owned_by_me(db, now)),
    }
    try:
        with db.write() as conn:
            if new.session is not None:
                ensure_session(conn, new.session, {}, now, new.tenant)
                conn.execute(
                    update(sessions).where(sessions.c.name == new.session).values(updated_at=now)
                )
            conn.execute(runs.insert().values(values))
            return to_run(conn.execute(select_run(new.run_id)).mappings().one())
    except IntegrityError:
        raise JournalConflictError(f"a run with id {new.run_id!r} already exists") from None


def _select_row(run_id: str) -> Select[*tuple[Any, ...]]:
    return select(runs).where(runs.c.run_id == run_id)


def select_run(run_id: str) -> Select[*tuple[Any, ...]]:
    """The run's row, with the totals of its journal for `to_run` (one statement)."""
    return with_journal_totals(_select_row(run_id), newest_first=False)


def get_run(db: SqlDb, run_id: str) -> Run | None:
    with db.read() as conn:
        row = conn.execute(select_run(run_id)).mappings().first()
    return None if row is None else to_run(row)


def _update_run(db: SqlDb, run_id: str, values: dict[str, Any]) -> Run:
    with db.write() as conn:
        result = conn.execute(update(runs).where(runs.c.run_id == run_id).values(values))
        if result.rowcount != 1:
            raise RunNotFoundError(run_id)
        return to_run(conn.execute(select_run(run_id)).mappings().one())


def finish_run(
    db: SqlDb,
    run_id: str,
    status: RunStatus,
    stop_reason: str,
    answer: str | None,
    detail: str | None,
    totals: RunTotals | None,
    failure_kind: str | None = None,
) -> Run:
    now = db.now()
    values: dict[str, Any] = {
        "status": status,
        "stop_reason": stop_reason,
        "answer": answer,
        "detail": detail,
        "failure_kind": failure_kind if status == "failed" else None,
        "finished_at": now,
        "updated_at": now,
    }
    if status == "completed":
        values["last_error"] = None  # what stopped an earlier attempt no longer matters
    if totals is not None:
        values.update(_totals(totals))
    return _update_run(db, run_id, values)


def abandon_attempt(db: SqlDb, run_id: str, previous: Run, error: str) -> Run:
    """Put a run back as it was before a resume attempt that failed, keeping its error."""
    now = db.now()
    values: dict[str, Any] = {
        "status": previous.status,
        "stop_reason": previous.stop_reason,
        "detail": previous.detail,
        "failure_kind": previous.failure_kind,
        "last_error": error,
        "finished_at": previous.finished_at if previous.finished_at is not None else now,
        "updated_at": now,
    }
    return _update_run(db, run_id, values)


def update_totals(db: SqlDb, run_id: str, totals: RunTotals) -> Run:
    now = db.now()
    return _update_run(db, run_id, {**_totals(totals), "updated_at": now, "heartbeat_at": now})


def heartbeat(db: SqlDb, run_id: str) -> None:
    with db.write() as conn:
        result = conn.execute(
            update(runs).where(runs.c.run_id == run_id).values(heartbeat_at=db.now())
        )
        if result.rowcount != 1:
            raise RunNotFoundError(run_id)


def _gone_values(now: float) -> dict[str, Any]:
    """What a run whose process is gone becomes: interrupted, or cancelled if a cancel
    was asked for (nobody is left to honour it, and the queue must not resume it). Decided
    in the UPDATE itself, so a cancel asked for meanwhile is not lost."""

    def pick(cancelled: str, interrupted: str) -> Any:
        return case((runs.c.cancel_requested, cancelled), else_=interrupted)

    return {
        "status": pick("cancelled", "interrupted"),
        "stop_reason": pick("cancelled", "interrupted"),
        "detail": pick(CANCELLED_DETAIL, INTERRUPTED_DETAIL),
        "finished_at": now,
        "updated_at": now,
    }


def mark_interrupted(db: SqlDb, stale_after_s: float) -> list[str]:
    now = db.now()
    with db.read() as conn:
        rows = conn.execute(text(RUNNING_OWNERS_SQL)).mappings()
        gone = [row for row in rows if owner_gone(row, now, stale_after_s)]
    marked: list[str] = []
    if not gone:
        return marked  # no write transaction: this runs before every queue poll
    with db.write() as conn:
        for row in gone:
            # Only if nobody claimed it meanwhile: same status, same owner as when checked.
            result = conn.execute(
                update(runs)
                .where(
                    runs.c.run_id == row["run_id"],
                    runs.c.status == "running",
                    runs.c.owner_token.is_not_distinct_from(row["owner_token"]),
                )
                .values(_gone_values(now))
            )
            if result.rowcount == 1:
                marked.append(row["run_id"])
    return marked


def _refuse(row: RowMapping, statuses: Collection[RunStatus], orphaned: bool) -> None:
    run_id: str = row["run_id"]
    status: str = row["status"]
    refusal = resume_refusal(run_id, status, row["failure_kind"])
    if refusal is not None:
        raise RunNotResumableError(refusal[0], hint=refusal[1])
    if status == "running" and not orphaned:
        raise RunNotResumableError(
            f"run {run_id!r} is running (pid {row['owner_pid']} on {row['owner_host']})",
            hint="wait for it to finish, or stop that process and resume the run then",
        )
    if status not in statuses and not ("interrupted" in statuses and orphaned):
        raise RunNotResumableError(
            f"run {run_id!r} is {status}; only runs that are "
            f"{' or '.join(sorted(statuses))} can be claimed here"
        )


def claim_run(db: SqlDb, run_id: str, statuses: Collection[RunStatus]) -> Run:
    now = db.now()
    with db.write() as conn:
        # The plain row: Postgres locks no outer-joined aggregate FOR UPDATE.
        row = conn.execute(_select_row(run_id).with_for_update()).mappings().first()
        if row is None:
            raise RunNotFoundError(run_id)
        orphaned = row["status"] == "running" and owner_gone(row, now, float("inf"))
        _refuse(row, statuses, orphaned)
        conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id)
            .values(
                status="running",
                stop_reason=None,
                detail=None,
                failure_kind=None,
                finished_at=None,
                updated_at=now,
                attempt=runs.c.attempt + 1,
                # An explicit resume overrides an earlier cancel.
                cancel_requested=False,
                **owned_by_me(db, now),
            )
        )
        return to_run(conn.execute(select_run(run_id)).mappings().one())


def delete_run(db: SqlDb, run_id: str) -> bool:
    """Delete a run with its nodes, cells and events (blobs may be shared and stay)."""
    with db.write() as conn:
        # Explicit child deletes: correct even where foreign keys are not enforced.
        for table in (events, cells, nodes):
            conn.execute(delete(table).where(table.c.run_id == run_id))
        return conn.execute(delete(runs).where(runs.c.run_id == run_id)).rowcount > 0
