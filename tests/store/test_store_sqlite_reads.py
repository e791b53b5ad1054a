"""`rlm runs list`'s plain `sqlite3` read of the default store gives exactly what the SQL
store's `list_runs` gives (the same statement), and declines what only the full store can
answer: a missing file, a schema not at head, a running run whose process is gone."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_support import new_run

from rlm_engine.store import SqlStore, open_store
from rlm_engine.store.records import ModelCall, NewRun, RunTotals, Usage
from rlm_engine.store.sqlite_reads import list_runs_plain, sqlite_path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def sqlite_store(home: Path) -> Iterator[SqlStore]:
    store = open_store(None, home)
    yield store
    store.close()


def _journal_a_call(store: SqlStore, run_id: str, node_id: str, cost: float | None) -> None:
    store.record_model_call(
        ModelCall(
            run_id=run_id,
            node_id=node_id,
            kind="root_turn",
            request_hash="h",
            response="ok",
            parent_id="r",
            model="m",
            usage=Usage(input_tokens=10, output_tokens=2),
            cost_usd=cost,
        )
    )


def test_the_plain_read_lists_what_the_store_lists(sqlite_store: SqlStore, home: Path) -> None:
    for i in range(4):
        new_run(sqlite_store, f"run-{i}", created_at=100.0 + i)
    sqlite_store.create_run(
        NewRun(run_id="in-session", question="q", session="s1", created_at=50.0)
    )
    sqlite_store.finish_run(
        "run-1",
        status="completed",
        stop_reason="final",
        answer="42",
        totals=RunTotals(input_tokens=5, output_tokens=1, cost_usd=0.5, iterations=1),
    )
    sqlite_store.finish_run("run-2", status="interrupted", stop_reason="interrupted")
    _journal_a_call(sqlite_store, "run-2", "r/1", 0.25)
    _journal_a_call(sqlite_store, "run-2", "r/2", None)  # one unpriced call: cost unknown
    _journal_a_call(sqlite_store, "run-3", "r/1", 0.1)
    path = sqlite_path(home)
    for kwargs in ({}, {"status": "interrupted"}, {"session": "s1"}, {"status": "running"}):
        plain = list_runs_plain(path, 3, **kwargs)  # type: ignore[arg-type]
        assert plain == sqlite_store.list_runs(3, **kwargs)  # type: ignore[arg-type]
    listed = {r.run_id: r for r in list_runs_plain(path, 10) or []}
    assert listed["run-2"].totals.from_journal and listed["run-2"].totals.cost_usd is None
    assert listed["run-2"].totals.iterations == 2
    assert listed["run-1"].totals.cost_usd == 0.5 and listed["run-1"].answer == "42"
    assert listed["run-0"].settings == {} and listed["in-session"].session == "s1"


def test_the_plain_read_declines_what_only_the_full_store_can_answer(
    sqlite_store: SqlStore, home: Path
) -> None:
    path = sqlite_path(home)
    assert list_runs_plain(path.with_name("missing.db"), 10) is None
    assert not path.with_name("missing.db").exists()  # never created by the read
    new_run(sqlite_store, "mine")  # running, owned by this live process: listed as it is
    assert [r.status for r in list_runs_plain(path, 10) or []] == ["running"]
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE runs SET owner_pid = 999999999, owner_token = 'gone'")
    assert list_runs_plain(path, 10) is None  # the full store marks it interrupted first
    sqlite_store.mark_interrupted_runs()
    assert [r.status for r in list_runs_plain(path, 10) or []] == ["interrupted"]
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0004'")
    assert list_runs_plain(path, 10) is None  # an older schema: the full store migrates
