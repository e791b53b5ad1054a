"""Runs: listing, terminal states, interruption detection, claiming for resume, cascade delete."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from store_support import new_run, python

from rlm_engine.events import IterationStarted
from rlm_engine.store import (
    CellStart,
    JournalConflictError,
    ModelCall,
    NewRun,
    RunNotFoundError,
    RunNotResumableError,
    RunTotals,
    SqlStore,
)
from rlm_engine.store.tables import runs


def _set_run(store: SqlStore, run_id: str, **values: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.update(runs).where(runs.c.run_id == run_id).values(**values))


def test_create_and_get_a_run(store: SqlStore) -> None:
    run = store.create_run(
        NewRun(
            run_id="r1",
            question="how many?",
            model="openai/gpt-5-mini",
            sub_model="openai/gpt-5-nano",
            settings={"max_iterations": 5, "nested": {"a": [1, 2]}},
            context_hash="c" * 64,
        )
    )
    assert run.status == "running" and run.attempt == 1 and run.owner_pid is not None
    assert store.get_run("r1") == run
    assert run.settings == {"max_iterations": 5, "nested": {"a": [1, 2]}}
    assert store.get_run("missing") is None
    with pytest.raises(JournalConflictError):
        new_run(store, "r1")


def test_list_runs_newest_first_with_filters(store: SqlStore) -> None:
    for i, run_id in enumerate(["a", "b", "c"]):
        new_run(store, run_id, created_at=1000.0 + i, session="s" if run_id != "b" else None)
    store.finish_run("b", status="completed", stop_reason="final", answer="42")
    assert [r.run_id for r in store.list_runs()] == ["c", "b", "a"]
    assert [r.run_id for r in store.list_runs(2)] == ["c", "b"]
    assert [r.run_id for r in store.list_runs(status="completed")] == ["b"]
    assert [r.run_id for r in store.list_runs(session="s")] == ["c", "a"]


def test_finish_run_records_answer_and_totals(store: SqlStore) -> None:
    new_run(store)
    store.update_run_totals("run-1", RunTotals(input_tokens=5, iterations=1))
    totals = RunTotals(10, 20, 3, 0.25, sub_calls=4, iterations=2)
    run = store.finish_run(
        "run-1", status="completed", stop_reason="final", answer="yes", totals=totals
    )
    assert run.status == "completed" and run.answer == "yes" and run.totals == totals
    assert run.finished_at is not None
    with pytest.raises(RunNotFoundError):
        store.finish_run("nope", status="failed", stop_reason="error")
    with pytest.raises(RunNotFoundError):
        store.heartbeat("nope")


def test_a_killed_owner_leaves_an_interrupted_run(
    store_url: str, store_home: Path, store: SqlStore
) -> None:
    child = python(
        """
        import sys, time
        from pathlib import Path
        from rlm_engine.store import NewRun, open_store
        store = open_store(sys.argv[1], Path(sys.argv[2]))
        store.create_run(NewRun(run_id="doomed", question="q"))
        print("ready", flush=True)
        time.sleep(60)
        """,
        store_url,
        str(store_home),
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    new_run(store, "alive")  # owned by this (live) process
    assert store.mark_interrupted_runs() == []
    child.send_signal(signal.SIGKILL)
    time.sleep(0.2)
    # Not yet reaped: a zombie is as dead as a reaped process.
    assert store.mark_interrupted_runs() == ["doomed"]
    child.communicate(timeout=10)
    run = store.get_run("doomed")
    assert run is not None and run.status == "interrupted" and run.finished_at is not None
    assert store.get_run("alive").status == "running"  # type: ignore[union-attr]
    assert store.mark_interrupted_runs() == []


def test_a_reused_pid_does_not_keep_a_run_alive(store: SqlStore) -> None:
    run = store.get_run(new_run(store))
    assert run is not None
    _set_run(store, run.run_id, owner_token=f"{run.owner_pid}:1")  # same pid, other start time
    assert store.mark_interrupted_runs() == [run.run_id]


def test_other_hosts_runs_are_judged_by_their_heartbeat(store: SqlStore) -> None:
    new_run(store, "fresh")
    new_run(store, "stale")
    now = time.time()
    _set_run(store, "fresh", owner_host="elsewhere", heartbeat_at=now - 10)
    _set_run(store, "stale", owner_host="elsewhere", heartbeat_at=now - 1000)
    assert store.mark_interrupted_runs(stale_after_s=120) == ["stale"]
    with pytest.raises(RunNotResumableError, match="running"):
        store.claim_run("fresh")


def test_claim_run_for_resume(store: SqlStore) -> None:
    new_run(store)
    with pytest.raises(RunNotResumableError):
        store.claim_run("run-1")  # its owner (this process) is alive
    _set_run(store, "run-1", status="interrupted")
    run = store.claim_run("run-1")
    assert run.status == "running" and run.attempt == 2 and run.finished_at is None
    store.finish_run("run-1", status="completed", stop_reason="final")
    with pytest.raises(RunNotResumableError, match="completed"):
        store.claim_run("run-1")
    with pytest.raises(RunNotResumableError, match="never resumed"):
        store.claim_run("run-1", statuses=("completed",))  # not even when asked for
    with pytest.raises(RunNotFoundError):
        store.claim_run("missing")


def test_a_running_run_with_a_dead_owner_can_be_claimed(store: SqlStore) -> None:
    new_run(store)
    _set_run(store, "run-1", owner_pid=2**22 + 12345, owner_token="x:1")
    assert store.claim_run("run-1").status == "running"


def test_delete_run_cascades(store: SqlStore) -> None:
    for run_id in ("gone", "kept"):
        new_run(store, run_id)
        store.append_event(IterationStarted(run_id=run_id, iteration=1))
        store.record_model_call(
            ModelCall(run_id=run_id, node_id="t1", kind="root_turn", request_hash="h", response="r")
        )
        store.begin_cell(CellStart(run_id, "", 1, 0, "x = 1"))
    assert store.delete_run("gone") is True
    assert store.delete_run("gone") is False
    assert store.get_run("gone") is None and store.run_tree("gone") is None
    assert store.list_events("gone") == [] and store.list_cells("gone") == []
    assert store.find_model_call("gone", "t1") is None
    tree = store.run_tree("kept")
    assert tree is not None and len(tree.nodes) == 1 and len(tree.cells) == 1
    assert len(store.list_events("kept")) == 1
