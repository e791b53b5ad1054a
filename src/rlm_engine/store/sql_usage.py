"""Usage of a tenant's model calls, summed in SQL: by day, model and session, and the cost
of a period (for the daily budget).

A call counts as its journal records it: the completed call nodes (root turns, `llm_query`,
digests, capsules) of the tenant's runs, as in a run's own totals. A call in flight has
used nothing yet that is known.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Float, Integer, case, cast, func, literal_column, select

from rlm_engine.store.records import MODEL_CALL_KINDS, UsageRow
from rlm_engine.store.sql_base import SqlDb
from rlm_engine.store.tables import nodes, runs

DAY_S = 86400


def _day_number(dialect: str) -> Any:
    """Days since the epoch of a node's start. The divisor is a literal, not a bound
    parameter: Postgres must see the same expression in SELECT and GROUP BY."""
    days = nodes.c.started_at / literal_column(str(DAY_S))
    # SQLite's CAST truncates (the same as floor for times after 1970); Postgres's rounds.
    return func.floor(days) if dialect == "postgresql" else cast(days, Integer)


def _calls_of(tenant: str, since: float | None) -> list[Any]:
    conditions = [
        runs.c.tenant == tenant,
        nodes.c.kind.in_(sorted(MODEL_CALL_KINDS)),
        nodes.c.status == "completed",
    ]
    if since is not None:
        conditions.append(nodes.c.started_at >= since)
    return conditions


def _day(number: float) -> str:
    return datetime.fromtimestamp(int(number) * DAY_S, UTC).strftime("%Y-%m-%d")


def usage_rows(db: SqlDb, tenant: str, since: float | None) -> list[UsageRow]:
    day = _day_number(db.engine.dialect.name)
    model = func.coalesce(nodes.c.model, runs.c.model)
    cost = cast(nodes.c.cost_usd, Float)
    query = (
        select(
            day.label("day"),
            model.label("model"),
            runs.c.session,
            func.count().label("calls"),
            func.sum(nodes.c.input_tokens).label("input_tokens"),
            func.sum(nodes.c.output_tokens).label("output_tokens"),
            func.sum(nodes.c.cached_tokens).label("cached_tokens"),
            func.coalesce(func.sum(cost), 0.0).label("cost_usd"),
            func.sum(case((nodes.c.cost_usd.is_(None), 1), else_=0)).label("unpriced"),
        )
        .select_from(nodes.join(runs, nodes.c.run_id == runs.c.run_id))
        .where(*_calls_of(tenant, since))
        .group_by(day, model, runs.c.session)
    )
    with db.read() as conn:
        rows = conn.execute(query).mappings().all()
    found = [
        UsageRow(
            day=_day(row["day"]),
            model=row["model"],
            session=row["session"],
            calls=int(row["calls"]),
            input_tokens=int(row["input_tokens"]),
            output_tokens=int(row["output_tokens"]),
            cached_tokens=int(row["cached_tokens"]),
            cost_usd=float(row["cost_usd"]),
            unpriced_calls=int(row["unpriced"]),
        )
        for row in rows
    ]
    # Ordered here: the backends sort NULL sessions differently.
    return sorted(found, key=lambda r: (r.day, r.model, r.session or ""))


def tenant_cost_since(db: SqlDb, tenant: str, since: float) -> float:
    query = (
        select(func.coalesce(func.sum(cast(nodes.c.cost_usd, Float)), 0.0))
        .select_from(nodes.join(runs, nodes.c.run_id == runs.c.run_id))
        .where(*_calls_of(tenant, since))
    )
    with db.read() as conn:
        return float(conn.execute(query).scalar_one())
