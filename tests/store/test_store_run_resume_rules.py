"""Which runs a resume may claim, how a failed attempt hands a run back, what runs record
about their engine, and totals summed from the journal of runs that did not finish."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from store_support import new_run

from rlm_engine.store import (
    CellStart,
    ModelCall,
    NewRun,
    RunNotResumableError,
    RunTotals,
    SqlStore,
    Usage,
    open_store,
)
from rlm_engine.store.connect import create_store_engine
from rlm_engine.store.migrate import _config, upgrade  # pyright: ignore[reportPrivateUsage]
from rlm_engine.store.tables import runs


def _interrupt(store: SqlStore, run_id: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(runs)
            .where(runs.c.run_id == run_id)
            .values(status="interrupted", stop_reason="interrupted", detail="its process died")
        )


@pytest.mark.parametrize("kind", ["connection", "server", "timeout", "rate_limit", "auth", None])
def test_a_run_failed_for_a_passing_reason_can_be_resumed(
    store: SqlStore, kind: str | None
) -> None:
    new_run(store)
    failed = store.finish_run(
        "run-1", status="failed", stop_reason="error", detail="down", failure_kind=kind
    )
    assert failed.failure_kind == kind
    claimed = store.claim_run("run-1")
    assert claimed.status == "running" and claimed.failure_kind is None and claimed.attempt == 2


@pytest.mark.parametrize("kind", ["bad_request", "not_found", "context_length", "content_filter"])
def test_a_run_failed_for_a_permanent_reason_is_refused_with_what_to_do(
    store: SqlStore, kind: str
) -> None:
    new_run(store)
    store.finish_run("run-1", status="failed", stop_reason="error", failure_kind=kind)
    with pytest.raises(RunNotResumableError, match=kind) as refused:
        store.claim_run("run-1")
    assert "rlm ask" in refused.value.hint
    assert store.get_run("run-1").status == "failed"  # type: ignore[union-attr]


def test_a_failed_attempt_hands_the_run_back_as_it_was_with_its_error(store: SqlStore) -> None:
    new_run(store)
    _interrupt(store, "run-1")
    before = store.get_run("run-1")
    assert before is not None
    store.claim_run("run-1")
    back = store.abandon_attempt("run-1", previous=before, error="NondeterminismError: diverged")
    assert (back.status, back.stop_reason, back.detail) == (
        "interrupted",
        "interrupted",
        "its process died",
    )
    assert back.last_error == "NondeterminismError: diverged" and back.attempt == 2
    again = store.claim_run("run-1")  # still resumable
    assert again.attempt == 3 and again.last_error == "NondeterminismError: diverged"
    done = store.finish_run("run-1", status="completed", stop_reason="final", answer="42")
    assert done.last_error is None and done.failure_kind is None


def test_completing_a_run_never_keeps_a_failure_kind(store: SqlStore) -> None:
    new_run(store)
    run = store.finish_run("run-1", status="completed", stop_reason="budget", failure_kind="auth")
    assert run.failure_kind is None


def test_a_run_records_the_engine_and_settings_shape_it_was_made_with(store: SqlStore) -> None:
    made = store.create_run(
        NewRun(run_id="v", question="q", engine_version="9.8.7", settings_version=2)
    )
    assert (made.engine_version, made.settings_version) == ("9.8.7", 2)
    assert store.list_runs()[0].engine_version == "9.8.7"
    old = store.get_run(new_run(store, "old"))
    assert old is not None and (old.engine_version, old.settings_version) == (None, None)


def _journal(store: SqlStore, run_id: str) -> None:
    calls = [
        ModelCall(run_id, "r/0", "root_turn", "h0", "turn", parent_id="r", usage=Usage(100, 10)),
        ModelCall(run_id, "r/1/0", "llm", "h1", "a", parent_id="r/1", usage=Usage(5, 1, 2)),
        ModelCall(
            run_id, "r/1/1", "llm", "h2", "", parent_id="r/1", status="failed", error="refused"
        ),
        ModelCall(run_id, "r/2", "root_turn", "h3", "turn", parent_id="r", usage=Usage(200, 20)),
    ]
    for call in calls:
        store.record_model_call(call)
    store.begin_cell(CellStart(run_id, "r/1", 1, 0, "x = 1"))


def test_unfinished_runs_show_the_totals_of_their_journal(store: SqlStore) -> None:
    for i, run_id in enumerate(("done", "cut", "failed", "empty")):
        new_run(store, run_id, created_at=1000.0 + i)
    for run_id in ("done", "cut", "failed"):
        _journal(store, run_id)
    recorded = RunTotals(input_tokens=7, output_tokens=7, sub_calls=1, iterations=1)
    store.finish_run("done", status="completed", stop_reason="final", totals=recorded)
    _interrupt(store, "cut")
    store.finish_run("failed", status="failed", stop_reason="error", failure_kind="server")
    store.finish_run("empty", status="failed", stop_reason="error", failure_kind="connection")

    from_journal = RunTotals(
        input_tokens=305,
        output_tokens=31,
        cached_tokens=2,
        cost_usd=None,  # the journaled calls carry no price
        sub_calls=2,
        iterations=2,
        from_journal=True,
    )
    listed = {run.run_id: run for run in store.list_runs()}
    assert [r.run_id for r in store.list_runs()] == ["empty", "failed", "cut", "done"]
    assert listed["done"].totals == recorded  # a completed run's own totals stand
    assert listed["cut"].totals == from_journal
    assert listed["failed"].totals == from_journal
    assert listed["empty"].totals == RunTotals()  # nothing journaled: nothing to sum
    assert store.get_run("cut").totals == from_journal  # type: ignore[union-attr]
    tree = store.run_tree("failed")
    assert tree is not None and tree.run.totals == from_journal
    assert [r.run_id for r in store.list_runs(limit=2)] == ["empty", "failed"]
    assert [r.run_id for r in store.list_runs(status="interrupted")] == ["cut"]


def test_journal_totals_are_priced_when_every_call_is(store: SqlStore) -> None:
    new_run(store, "p")
    for i, cost in enumerate((0.25, 0.5)):
        store.record_model_call(
            ModelCall("p", f"r/{i}", "root_turn", f"h{i}", "t", parent_id="r", cost_usd=cost)
        )
    _interrupt(store, "p")
    totals = store.get_run("p").totals  # type: ignore[union-attr]
    assert totals.cost_usd == pytest.approx(0.75) and totals.iterations == 2


def test_a_store_from_before_run_versions_upgrades_and_keeps_its_runs(
    store_url: str, tmp_path: Path
) -> None:
    engine = create_store_engine(store_url)
    try:
        with engine.begin() as conn:
            command.upgrade(_config(conn), "0002")
            conn.execute(
                runs.insert().values(
                    run_id="old",
                    question="q",
                    model="m",
                    sub_model="m",
                    settings={},
                    status="failed",
                    stop_reason="error",
                    input_tokens=0,
                    output_tokens=0,
                    cached_tokens=0,
                    sub_calls=0,
                    iterations=0,
                    created_at=1.0,
                    updated_at=1.0,
                    attempt=1,
                    last_event_seq=-1,
                )
            )
        upgrade(engine)
        store = open_store(store_url, tmp_path / "home")
        try:
            old = store.get_run("old")
            assert old is not None and old.status == "failed"
            assert (old.engine_version, old.settings_version, old.failure_kind) == (None,) * 3
            assert store.claim_run("old").attempt == 2  # an old failure is of unknown kind
        finally:
            store.close()
        with engine.begin() as conn:
            command.downgrade(_config(conn), "0002")
            assert "failure_kind" not in {c["name"] for c in sa.inspect(conn).get_columns("runs")}
    finally:
        engine.dispose()
