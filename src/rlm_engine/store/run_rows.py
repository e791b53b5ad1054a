"""The runs table read as plain SQL: the listing's statement, the journal sums every run
read carries, and rows turned into `Run` records, without SQLAlchemy.

The statements are portable text with ``:name`` parameters, which SQLAlchemy's `text()`
binds on every backend and `sqlite3` binds natively: the SQL store runs them through its
engine (`sql_run_list`, `sql_run_totals`), and `sqlite_reads` runs the same text on a
plain `sqlite3` connection, so ``rlm runs list`` need not load SQLAlchemy. One
statement, one row mapping, two ways to send them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rlm_engine.store.owner import owner_is_alive
from rlm_engine.store.records import MODEL_CALL_KINDS, Run, RunStatus, RunTotals

SUB_CALL_KINDS = ("llm", "rlm", "tool")
# The root run's node: its direct root turns are the run's iterations.
ROOT_NODE = "r"
JOURNAL_PREFIX = "journal_"


def _in(values: tuple[str, ...] | list[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"  # constants of this module only


def _journal_sums() -> tuple[tuple[str, str], ...]:
    finished = "status IN ('completed', 'failed')"
    model_call = f"kind IN {_in(sorted(MODEL_CALL_KINDS))} AND status = 'completed'"

    def total(column: str) -> str:
        return f"COALESCE(SUM(CASE WHEN {model_call} THEN {column} ELSE 0 END), 0)"

    def count(condition: str) -> str:
        return f"COALESCE(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END), 0)"

    sums = (
        ("input_tokens", total("input_tokens")),
        ("output_tokens", total("output_tokens")),
        ("cached_tokens", total("cached_tokens")),
        ("cost_usd", f"SUM(CASE WHEN {model_call} THEN CAST(cost_usd AS FLOAT) ELSE NULL END)"),
        ("unpriced", count(f"{model_call} AND cost_usd IS NULL")),
        ("sub_calls", count(f"{finished} AND kind IN {_in(SUB_CALL_KINDS)}")),
        (
            "iterations",
            count(f"{model_call} AND kind = 'root_turn' AND parent_id = '{ROOT_NODE}'"),
        ),
        ("nodes", count(finished)),
    )
    return tuple((JOURNAL_PREFIX + name, expr) for name, expr in sums)


JOURNAL_SUMS: tuple[tuple[str, str], ...] = _journal_sums()
"""(column label, SQL over the ``nodes`` table) of a run's journal totals, per run."""


def run_list_sql(
    limit: int,
    status: RunStatus | None = None,
    session: str | None = None,
    tenant: str | None = None,
    before: tuple[float, str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """One page of runs, newest first, each with its journal sums (one statement), and
    its parameters."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    for column, value in (("status", status), ("session", session), ("tenant", tenant)):
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    if before is not None:
        # Keyset pagination: strictly older than the cursor's (created_at, run_id), spelled
        # out so both backends use the (tenant, created_at) / (created_at) indexes.
        where.append(
            "(created_at < :before_created OR "
            "(created_at = :before_created AND run_id < :before_run_id))"
        )
        params["before_created"], params["before_run_id"] = before
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    sums = ", ".join(f"{expr} AS {label}" for label, expr in JOURNAL_SUMS)
    labels = ", ".join(f"journal.{label}" for label, _ in JOURNAL_SUMS)
    sql = (
        f"WITH page AS (SELECT * FROM runs{condition} "
        "ORDER BY created_at DESC, run_id DESC LIMIT :limit), "
        f"journal AS (SELECT run_id, {sums} FROM nodes "
        "WHERE run_id IN (SELECT run_id FROM page) GROUP BY run_id) "
        f"SELECT page.*, {labels} FROM page "
        "LEFT OUTER JOIN journal ON journal.run_id = page.run_id "
        "ORDER BY page.created_at DESC, page.run_id DESC"
    )
    return sql, params


RUNNING_OWNERS_SQL = (
    "SELECT run_id, owner_host, owner_pid, owner_token, heartbeat_at, updated_at "
    "FROM runs WHERE status = 'running'"
)
"""The owners of the running runs, to tell which were interrupted (`owner_gone`); only
"running" runs: a queued run has no owner to lose."""


def owner_gone(row: Mapping[Any, Any], now: float, stale_after_s: float) -> bool:
    """Whether the process owning a running run (a `RUNNING_OWNERS_SQL` row) is gone: for
    certain on its own host, by a stale heartbeat from another."""
    alive = owner_is_alive(row["owner_host"], row["owner_pid"], row["owner_token"])
    if alive is not None:
        return not alive
    last_sign = row["heartbeat_at"] or row["updated_at"]
    return last_sign < now - stale_after_s


def journal_totals(row: Mapping[Any, Any]) -> RunTotals | None:
    """The journal's totals for a run that is not completed and has journaled nodes; None
    to use the totals the run recorded (a completed run's are exact)."""
    if row["status"] == "completed" or not row.get(JOURNAL_PREFIX + "nodes"):
        return None
    cost = row[JOURNAL_PREFIX + "cost_usd"]
    return RunTotals(
        input_tokens=int(row[JOURNAL_PREFIX + "input_tokens"]),
        output_tokens=int(row[JOURNAL_PREFIX + "output_tokens"]),
        cached_tokens=int(row[JOURNAL_PREFIX + "cached_tokens"]),
        # Unknown if any call's price is: a partial sum would read as the whole cost.
        cost_usd=None if row[JOURNAL_PREFIX + "unpriced"] or cost is None else float(cost),
        sub_calls=int(row[JOURNAL_PREFIX + "sub_calls"]),
        iterations=int(row[JOURNAL_PREFIX + "iterations"]),
        from_journal=True,
    )


def to_run(row: Mapping[Any, Any]) -> Run:
    """A runs row (with its `JOURNAL_SUMS`) as a `Run`. The settings come decoded from a
    typed SQLAlchemy column, as JSON text from a plain `sqlite3` read."""
    totals = journal_totals(row)
    if totals is None:
        totals = RunTotals(
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cached_tokens=row["cached_tokens"],
            cost_usd=row["cost_usd"],
            sub_calls=row["sub_calls"],
            iterations=row["iterations"],
        )
    settings = row["settings"]
    if isinstance(settings, str | bytes):
        settings = json.loads(settings)
    return Run(
        run_id=row["run_id"],
        session=row["session"],
        question=row["question"],
        model=row["model"],
        sub_model=row["sub_model"],
        settings=dict(settings or {}),
        status=row["status"],
        stop_reason=row["stop_reason"],
        detail=row["detail"],
        answer=row["answer"],
        totals=totals,
        context_hash=row["context_hash"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        heartbeat_at=row["heartbeat_at"],
        owner_host=row["owner_host"],
        owner_pid=row["owner_pid"],
        attempt=row["attempt"],
        last_event_seq=row["last_event_seq"],
        engine_version=row["engine_version"],
        settings_version=row["settings_version"],
        failure_kind=row["failure_kind"],
        last_error=row["last_error"],
        tenant=row["tenant"],
        user=row["principal_user"],
        auto_resume=bool(row["auto_resume"]),
        cancel_requested=bool(row["cancel_requested"]),
    )
