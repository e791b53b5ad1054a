"""A run's totals summed from its journal, for runs that did not finish normally.

A run records its own totals when it ends; one that was interrupted, or that failed before
it could, has only its journal. Reading runs joins each to the sums of its journaled nodes
in the same statement (grouped over the selected runs only, never one query per run).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, literal_column, select

from rlm_engine.store.run_rows import JOURNAL_SUMS, ROOT_NODE, SUB_CALL_KINDS, journal_totals
from rlm_engine.store.tables import nodes

__all__ = ["ROOT_NODE", "SUB_CALL_KINDS", "journal_totals", "with_journal_totals"]


def _sums() -> list[Any]:
    # The same SQL as the run listing's (`run_rows.JOURNAL_SUMS`), over ``nodes`` alone.
    return [literal_column(expr).label(label) for label, expr in JOURNAL_SUMS]


def with_journal_totals(query: Select[Any], *, newest_first: bool) -> Select[Any]:
    """`query` (a select of runs rows, possibly limited) with its runs' journal sums as
    `journal_*` columns, NULL for a run with no journaled node; `newest_first` keeps the
    listing order (a subquery's order is not kept by the outer select)."""
    page = query.subquery("page")
    sums = (
        select(nodes.c.run_id, *_sums())
        .select_from(nodes)
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
