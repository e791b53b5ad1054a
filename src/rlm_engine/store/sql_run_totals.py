"""A run's totals summed from its journal, for runs that did not finish normally.

A run records its own totals when it ends; one that was interrupted, or that failed before
it could, has only its journal. Reading runs joins each to the sums of its journaled nodes
in the same statement (grouped over the selected runs only, never one query per run).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, RowMapping, Select, case, cast, func, select

from rlm_engine.store.records import MODEL_CALL_KINDS, RunTotals
from rlm_engine.store.tables import nodes

SUB_CALL_KINDS = ("llm", "rlm", "tool")
# The root run's node: its direct root turns are the run's iterations.
ROOT_NODE = "r"
_PREFIX = "journal_"


def _sums() -> list[Any]:
    finished = nodes.c.status.in_(("completed", "failed"))
    model_call = nodes.c.kind.in_(sorted(MODEL_CALL_KINDS)) & (nodes.c.status == "completed")

    def total(column: Any, name: str) -> Any:
        return func.coalesce(func.sum(case((model_call, column), else_=0)), 0).label(_PREFIX + name)

    def count(condition: Any, name: str) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0).label(_PREFIX + name)

    return [
        total(nodes.c.input_tokens, "input_tokens"),
        total(nodes.c.output_tokens, "output_tokens"),
        total(nodes.c.cached_tokens, "cached_tokens"),
        func.sum(case((model_call, cast(nodes.c.cost_usd, Float)), else_=None)).label(
            _PREFIX + "cost_usd"
        ),
        count(model_call & nodes.c.cost_usd.is_(None), "unpriced"),
        count(finished & nodes.c.kind.in_(SUB_CALL_KINDS), "sub_calls"),
        count(
            model_call & (nodes.c.kind == "root_turn") & (nodes.c.parent_id == ROOT_NODE),
            "iterations",
        ),
        count(finished, "nodes"),
    ]


def with_journal_totals(query: Select[Any], *, newest_first: bool) -> Select[Any]:
    """`query` (a select of runs rows, possibly limited) with its runs' journal sums as
    `journal_*` columns, NULL for a run with no journaled node; `newest_first` keeps the
    listing order (a subquery's order is not kept by the outer select)."""
    page = query.subquery("page")
    sums = (
        select(nodes.c.run_id, *_sums())
        .where(nodes.c.run_id.in_(select(page.c.run_id)))
        .group_by(nodes.c.run_id)
        .subquery("journal")
    )
    joined = select(page, *[c for c in sums.c if c.name != "run_id"]).select_from(
        page.outerjoin(sums, sums.c.run_id == page.c.run_id)
    )
    if newest_first:
        joined = joined.order_by(page.c.created_at.desc(), page.c.run_id.desc())
    return joined


def journal_totals(row: RowMapping) -> RunTotals | None:
    """The journal's totals for a run that is not completed and has journaled nodes; None
    to use the totals the run recorded (a completed run's are exact)."""
    if row["status"] == "completed" or not row.get(_PREFIX + "nodes"):
        return None
    cost = row[_PREFIX + "cost_usd"]
    return RunTotals(
        input_tokens=int(row[_PREFIX + "input_tokens"]),
        output_tokens=int(row[_PREFIX + "output_tokens"]),
        cached_tokens=int(row[_PREFIX + "cached_tokens"]),
        # Unknown if any call's price is: a partial sum would read as the whole cost.
        cost_usd=None if row[_PREFIX + "unpriced"] or cost is None else float(cost),
        sub_calls=int(row[_PREFIX + "sub_calls"]),
        iterations=int(row[_PREFIX + "iterations"]),
        from_journal=True,
    )
