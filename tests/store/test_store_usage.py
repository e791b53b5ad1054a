"""Usage of a tenant's model calls by UTC day, model and session, and a period's cost."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from rlm_engine.store import ModelCall, NewRun, NodeKind, NodeStart, SqlStore, Usage, UsageRow
from rlm_engine.store.tables import nodes

DAY1 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY2 = DAY1 + 86_400.0


def _call(
    store: SqlStore,
    run_id: str,
    node_id: str,
    started_at: float,
    *,
    kind: NodeKind = "llm",
    model: str | None = "m-big",
    usage: Usage | None = None,
    cost: float | None = 0.5,
) -> None:
    store.record_model_call(
        ModelCall(
            run_id=run_id,
            node_id=node_id,
            kind=kind,
            request_hash=f"h-{node_id}",
            response="ok",
            model=model,
            usage=usage or Usage(10, 2, 1),
            cost_usd=cost,
        )
    )
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(nodes)
            .where(nodes.c.run_id == run_id, nodes.c.node_id == node_id)
            .values(started_at=started_at)
        )


@pytest.fixture
def journaled(store: SqlStore) -> SqlStore:
    """Tenant "acme": a run in session "s" over two days, a run in no session (whose
    run model names an unnamed call's model); tenant "other": one run."""
    for run_id, tenant, session in (
        ("a1", "acme", "s"),
        ("a2", "acme", None),
        ("o1", "other", "s2"),
    ):
        store.create_run(
            NewRun(run_id=run_id, question="q", model="m-run", tenant=tenant, session=session)
        )
    _call(store, "a1", "r/0", DAY1 + 10, kind="root_turn")
    _call(store, "a1", "r/1/0", DAY1 + 20, cost=None)  # unpriced
    _call(store, "a1", "r/1/1", DAY1 + 86_399.5, kind="digest", model="m-small", cost=0.25)
    _call(store, "a1", "r/2", DAY2 + 1, kind="capsule")
    _call(store, "a2", "r/0", DAY2 + 5, model=None, usage=Usage(7, 7, 0), cost=1.0)
    # Not model calls, or not finished: never counted.
    _call(store, "a1", "r/3", DAY2 + 6, kind="rlm", cost=9.0)
    _call(store, "a1", "r/4", DAY2 + 7, kind="tool", cost=9.0)
    store.start_node(NodeStart(run_id="a1", node_id="r/5", kind="llm", model="m-big"))
    _call(store, "o1", "r/0", DAY1 + 30, cost=100.0)
    return store


def test_usage_rows_group_a_tenants_calls_by_day_model_and_session(journaled: SqlStore) -> None:
    rows = journaled.usage_rows(tenant="acme")
    assert rows == [
        UsageRow("2026-01-01", "m-big", "s", 2, 20, 4, 2, 0.5, 1),
        UsageRow("2026-01-01", "m-small", "s", 1, 10, 2, 1, 0.25, 0),
        UsageRow("2026-01-02", "m-big", "s", 1, 10, 2, 1, 0.5, 0),
        UsageRow("2026-01-02", "m-run", None, 1, 7, 7, 0, 1.0, 0),
    ]
    assert journaled.usage_rows(tenant="other") == [
        UsageRow("2026-01-01", "m-big", "s2", 1, 10, 2, 1, 100.0, 0)
    ]
    assert journaled.usage_rows(tenant="nobody") == []


def test_usage_rows_since_a_time(journaled: SqlStore) -> None:
    rows = journaled.usage_rows(tenant="acme", since=DAY2)
    assert [(r.day, r.model, r.calls) for r in rows] == [
        ("2026-01-02", "m-big", 1),
        ("2026-01-02", "m-run", 1),
    ]


def test_a_tenants_cost_since_a_time(journaled: SqlStore) -> None:
    assert journaled.tenant_cost_since("acme", 0.0) == pytest.approx(2.25)
    assert journaled.tenant_cost_since("acme", DAY1 + 15) == pytest.approx(1.75)
    assert journaled.tenant_cost_since("acme", DAY2 + 2) == pytest.approx(1.0)
    assert journaled.tenant_cost_since("other", 0.0) == pytest.approx(100.0)
    assert journaled.tenant_cost_since("acme", DAY2 + 100) == 0.0
    assert journaled.tenant_cost_since("nobody", 0.0) == 0.0
