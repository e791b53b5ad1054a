"""Usage stats of a tenant: by model, day and session; unknown prices stay unknown."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlm_engine.service.principal import Principal
from rlm_engine.service.stats import UsageTotals, summarize, usage_stats
from rlm_engine.store import ModelCall, NewRun, SqlStore, Usage, open_store
from rlm_engine.store.records import UsageRow

ALICE = Principal("alice", "a")
BOB = Principal("bob", "b")


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[SqlStore]:
    opened = open_store(store_url, tmp_path / "home")
    try:
        yield opened
    finally:
        opened.close()


def call(
    store: SqlStore, run_id: str, node: str, model: str, cost: float | None, tokens: int = 10
) -> None:
    store.record_model_call(
        ModelCall(
            run_id=run_id,
            node_id=node,
            kind="llm",
            request_hash=f"h-{node}",
            response="ok",
            model=model,
            usage=Usage(input_tokens=tokens, output_tokens=tokens // 2, cached_tokens=1),
            cost_usd=cost,
        )
    )


def test_stats_group_a_tenants_calls_and_leave_out_other_tenants(store: SqlStore) -> None:
    store.create_run(NewRun(run_id="a1", question="q", tenant="alice", session="s1"))
    store.create_run(NewRun(run_id="a2", question="q", tenant="alice"))
    store.create_run(NewRun(run_id="b1", question="q", tenant="bob", session="s2"))
    call(store, "a1", "n1", "openai/big", 0.25, tokens=100)
    call(store, "a1", "n2", "openai/small", 0.5)
    call(store, "a2", "n1", "openai/big", 0.25)
    call(store, "b1", "n1", "openai/big", 7.0)

    stats = usage_stats(store, ALICE)

    assert stats.totals.calls == 3
    assert stats.totals.input_tokens == 120
    assert stats.totals.output_tokens == 60
    assert stats.totals.cached_tokens == 3
    assert stats.totals.cost_usd == pytest.approx(1.0)
    assert stats.totals.unpriced_calls == 0
    assert list(stats.by_model) == ["openai/big", "openai/small"]
    assert stats.by_model["openai/big"].calls == 2
    assert stats.by_model["openai/big"].cost_usd == pytest.approx(0.5)
    assert list(stats.by_session) == ["s1"]
    assert stats.by_session["s1"].calls == 2
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert list(stats.by_day) == [today]
    assert stats.by_day[today].calls == 3
    # Bob sees his call only, never Alice's.
    bob = usage_stats(store, BOB)
    assert bob.totals.calls == 1
    assert bob.totals.cost_usd == pytest.approx(7.0)


def test_an_unpriced_call_makes_the_cost_unknown_where_it_counts(store: SqlStore) -> None:
    store.create_run(NewRun(run_id="a1", question="q", tenant="alice"))
    call(store, "a1", "n1", "openai/priced", 0.25)
    call(store, "a1", "n2", "local/unpriced", None)

    stats = usage_stats(store, ALICE)

    assert stats.totals.cost_usd is None
    assert stats.totals.unpriced_calls == 1
    assert stats.by_model["openai/priced"].cost_usd == pytest.approx(0.25)
    assert stats.by_model["local/unpriced"].cost_usd is None
    assert stats.by_model["local/unpriced"].unpriced_calls == 1


def test_since_leaves_out_earlier_calls(store: SqlStore) -> None:
    store.create_run(NewRun(run_id="a1", question="q", tenant="alice"))
    call(store, "a1", "n1", "openai/m", 0.25)
    assert usage_stats(store, ALICE, since=time.time() + 3600).totals == UsageTotals()
    assert usage_stats(store, ALICE, since=time.time() - 3600).totals.calls == 1


def row(day: str, model: str, session: str | None, cost: float, unpriced: int = 0) -> UsageRow:
    return UsageRow(day, model, session, 1 + unpriced, 10, 5, 0, cost, unpriced)


def test_summarize_adds_rows_by_day_model_and_session() -> None:
    stats = summarize(
        [
            row("2026-01-02", "m2", None, 1.0),
            row("2026-01-01", "m1", "s", 2.0),
            row("2026-01-01", "m2", "s", 0.5, unpriced=2),
        ]
    )
    assert list(stats.by_day) == ["2026-01-01", "2026-01-02"]
    assert stats.by_day["2026-01-01"] == UsageTotals(
        calls=4, input_tokens=20, output_tokens=10, cost_usd=None, unpriced_calls=2
    )
    assert stats.by_day["2026-01-02"].cost_usd == pytest.approx(1.0)
    assert stats.by_model["m1"].cost_usd == pytest.approx(2.0)
    assert stats.by_session == {"s": stats.by_day["2026-01-01"]}
    assert stats.totals.calls == 5
    assert stats.totals.unpriced_calls == 2
    assert stats.totals.cost_usd is None
