"""Group commit: journal writes of concurrent callers share transactions (SQLite, Postgres)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, wait
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from store_support import new_run, python

from rlm_engine.events import RunStarted
from rlm_engine.store import (
    JournalConflictError,
    NotFoundError,
    RunNotFoundError,
    SqlStore,
    open_store,
)
from rlm_engine.store.group_commit import SETTLE_PAUSE_S, GroupCommitWriter
from rlm_engine.store.records import CellFinish, CellStart, JournalWrites, ModelCall, NodeStart


def started() -> RunStarted:
    return RunStarted(run_id="run-1", question="q", model="m", sub_model="m")


def call(node_id: str, run_id: str = "run-1", request_hash: str = "h") -> ModelCall:
    return ModelCall(
        run_id=run_id,
        node_id=node_id,
        kind="llm",
        request_hash=request_hash,
        response=f"answer of {node_id}",
        parent_id="r/1",
        model="m",
    )


class Commits:
    """Counts the engine's committed transactions."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        self._engine = engine
        event.listen(engine, "commit", self._on_commit)

    def _on_commit(self, _conn: Any) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(self._engine, "commit", self._on_commit)


@pytest.fixture
def commits(store: SqlStore) -> Iterator[Commits]:
    counter = Commits(store.engine)
    yield counter
    counter.close()


def hold(writer: GroupCommitWriter) -> threading.Event:
    """Keep the writer thread busy until the returned event is set (writes queue meanwhile)."""
    release = threading.Event()
    busy = threading.Event()

    def block() -> None:
        busy.set()
        release.wait(10)

    writer.call(block)
    assert busy.wait(10)
    return release


def test_concurrent_writes_are_committed_in_one_transaction(
    store: SqlStore, commits: Commits
) -> None:
    new_run(store)
    writer = store.journal_writer
    release = hold(writer)
    futures = [writer.submit(JournalWrites(calls=[call(f"r/1/{i}")])) for i in range(50)]
    futures.append(writer.submit(JournalWrites(events=[started()])))
    assert not any(f.done() for f in futures)
    before = commits.count
    release.set()
    for f in futures:
        f.result(10)
    # One transaction for the fifty calls, one after it for the events that queued with them.
    assert commits.count - before == 2
    assert writer.groups_committed == 2 and writer.writes_committed == 51
    assert all(store.find_model_call("run-1", f"r/1/{i}") is not None for i in range(50))
    assert [e.type for e in store.list_events("run-1")] == ["run_started"]


def test_journal_writes_are_committed_ahead_of_queued_events(store: SqlStore) -> None:
    new_run(store)
    writer = store.journal_writer
    release = hold(writer)
    order: list[str] = []
    events = writer.submit(JournalWrites(events=[started()]))
    events.add_done_callback(lambda _: order.append("events"))
    journal = writer.submit(JournalWrites(calls=[call("r/1/0")]))
    journal.add_done_callback(lambda _: order.append("journal"))
    release.set()
    events.result(10)
    journal.result(10)
    assert order == ["journal", "events"]


def test_a_caller_is_released_only_once_its_group_is_committed(store: SqlStore) -> None:
    new_run(store)
    entered, release = threading.Event(), threading.Event()

    def commit_slowly(_conn: Any) -> None:
        if threading.current_thread().name == "rlm-journal-writer" and not release.is_set():
            entered.set()
            release.wait(10)

    event.listen(store.engine, "commit", commit_slowly)
    try:
        done = store.journal_writer.submit(JournalWrites(calls=[call("r/1/0")]))
        assert entered.wait(10)  # the group is written and about to commit
        assert not done.done()
        assert store.find_model_call("run-1", "r/1/0") is None  # not visible: not committed
        release.set()
        done.result(10)
        assert store.find_model_call("run-1", "r/1/0") is not None
    finally:
        release.set()
        event.remove(store.engine, "commit", commit_slowly)


@pytest.mark.parametrize("bad", ["missing run", "conflict"])
def test_a_failed_group_fails_every_caller_and_the_writer_goes_on(
    store: SqlStore, bad: str
) -> None:
    new_run(store)
    store.record_model_call(call("r/1/9"))
    writer = store.journal_writer
    release = hold(writer)
    wrong = call("r/1/0", "no-such-run") if bad == "missing run" else call("r/1/9", "run-1", "h2")
    expected = RunNotFoundError if bad == "missing run" else JournalConflictError
    group = [
        writer.submit(JournalWrites(calls=[call("r/1/1")])),
        writer.submit(JournalWrites(calls=[wrong])),
        writer.submit(JournalWrites(calls=[call("r/1/2")])),
    ]
    release.set()
    wait(group, 10)
    for future in group:
        with pytest.raises(expected):
            future.result()
    # All or nothing: the innocent writes of the failed group are not journaled either.
    assert store.find_model_call("run-1", "r/1/1") is None
    assert writer.groups_failed == 1
    writer.submit(JournalWrites(calls=[call("r/1/3")])).result(10)
    assert store.find_model_call("run-1", "r/1/3") is not None


def test_write_journal_follows_the_single_row_rules(store: SqlStore) -> None:
    new_run(store)
    store.record_model_call(call("r/1/0"))
    first = store.find_model_call("run-1", "r/1/0")
    # Journaled again with the same request: the first record stands.
    again = ModelCall(
        run_id="run-1", node_id="r/1/0", kind="llm", request_hash="h", response="other"
    )
    store.write_journal(JournalWrites(calls=[again, call("r/1/1"), call("r/1/1")]))
    assert store.find_model_call("run-1", "r/1/0") == first
    found = store.find_model_call("run-1", "r/1/1")
    assert found is not None and found.response == "answer of r/1/1"
    with pytest.raises(JournalConflictError):
        store.write_journal(JournalWrites(calls=[call("r/1/2"), call("r/1/2", request_hash="x")]))
    long = "x" * 5000  # above the fixture's inline limit: goes to a blob
    store.write_journal(JournalWrites(calls=[ModelCall("run-1", "r/1/3", "llm", "h", long)]))
    stored = store.find_model_call("run-1", "r/1/3")
    assert stored is not None and stored.response == long


def test_cells_and_events_go_through_write_journal(store: SqlStore) -> None:
    new_run(store)
    start = CellStart("run-1", "r/1", 0, 0, "print(1)", meta={"clock": 5.0})
    store.write_journal(JournalWrites(cell_starts=[start]))
    cell = store.get_cell(start.key)
    assert cell is not None and cell.status == "executing"
    finish = CellFinish(start.key, "completed", output="1\n", meta={"engine_output_hash": "o"})
    event = started()
    store.write_journal(JournalWrites(cell_finishes=[finish], events=[event]))
    cell = store.get_cell(start.key)
    assert cell is not None and cell.status == "completed" and cell.output == "1\n"
    assert cell.meta == {"clock": 5.0, "engine_output_hash": "o"}
    assert len(store.list_events("run-1")) == 1
    store.write_journal(JournalWrites(cell_finishes=[finish]))  # the same outcome: a no-op
    with pytest.raises(JournalConflictError):
        store.write_journal(JournalWrites(cell_starts=[start]))


def test_one_group_begins_and_finishes_cells_in_order(store: SqlStore) -> None:
    """A turn's commit carries the previous cell's finish and the next cell's start; a
    start and its own finish may share a group, and a snapshot's meta merges later."""
    new_run(store)
    first = CellStart("run-1", "r/1", 1, 0, "print(1)", meta={"clock": 1.0})
    second = CellStart("run-1", "r/1", 2, 0, "print(2)", meta={"clock": 2.0})
    done = CellFinish(first.key, "completed", output="1\n", meta={"engine_output_hash": "a"})
    long = "y" * 5000  # above the fixture's inline limit: the output goes to a blob
    failed = CellFinish(second.key, "failed", output=long, error="boom")
    store.write_journal(JournalWrites(cell_starts=[first, second], cell_finishes=[done, failed]))
    one, two = store.get_cell(first.key), store.get_cell(second.key)
    assert one is not None and one.status == "completed" and one.output == "1\n"
    assert one.meta == {"clock": 1.0, "engine_output_hash": "a"}
    assert one.finished_at is not None and one.started_at is not None
    assert two is not None and (two.status, two.output, two.error) == ("failed", long, "boom")
    assert two.meta == {"clock": 2.0} and two.output_chars == len(long)
    # The same outcome again, with a snapshot: only the meta changes.
    snapshot = CellFinish(first.key, "completed", output="1\n", meta={"snapshot": {"ref": "b"}})
    store.write_journal(JournalWrites(cell_finishes=[snapshot]))
    again = store.get_cell(first.key)
    assert again is not None and again.output == "1\n" and again.finished_at == one.finished_at
    assert again.meta == {"clock": 1.0, "engine_output_hash": "a", "snapshot": {"ref": "b"}}
    with pytest.raises(JournalConflictError):  # another outcome of a finished cell
        store.write_journal(JournalWrites(cell_finishes=[replace(done, output="2\n")]))
    never = CellFinish(CellStart("run-1", "r/1", 9, 0, "x").key, "completed")
    with pytest.raises(NotFoundError):
        store.write_journal(JournalWrites(cell_finishes=[never]))


def test_load_journal_reads_finished_calls_and_every_cell(store: SqlStore) -> None:
    new_run(store)
    store.write_journal(JournalWrites(calls=[call(f"r/1/{i}") for i in range(3)]))
    store.write_journal(
        JournalWrites(
            cell_starts=[CellStart("run-1", "r/1", 0, 0, "a"), CellStart("run-1", "r/2", 0, 0, "b")]
        )
    )
    snapshot = store.load_journal("run-1")
    assert sorted(snapshot.calls) == ["r/1/0", "r/1/1", "r/1/2"]
    assert snapshot.calls["r/1/2"].response == "answer of r/1/2"
    assert [(c.node_id, c.code) for c in snapshot.cells] == [("r/1", "a"), ("r/2", "b")]
    assert store.load_journal("no-such-run").calls == {}


def test_close_commits_what_is_queued(store_url: str, store_home: Any) -> None:
    store = open_store(store_url, store_home)
    new_run(store)
    futures: list[Future[None]] = [
        store.journal_writer.submit(JournalWrites(calls=[call(f"r/1/{i}")])) for i in range(20)
    ]
    store.close()
    assert all(f.done() and f.exception() is None for f in futures)
    reopened = open_store(store_url, store_home)
    try:
        assert len(reopened.load_journal("run-1").calls) == 20
    finally:
        reopened.close()


_WRITER = """
import sys
from pathlib import Path
from rlm_engine.store import open_store
from rlm_engine.store.records import JournalWrites, ModelCall
store = open_store(sys.argv[1], Path(sys.argv[2]))
run_id = sys.argv[3]
futures = [
    store.journal_writer.submit(
        JournalWrites(calls=[ModelCall(run_id, f"r/1/{i}", "llm", "h", "a", parent_id="r/1")])
    )
    for i in range(300)
]
for f in futures:
    f.result(60)
print(store.journal_writer.groups_committed)
store.close()
"""


def test_group_commit_is_correct_with_writers_in_other_processes(
    store: SqlStore, store_url: str, store_home: Any
) -> None:
    runs = [new_run(store, f"run-{i}") for i in range(3)]
    procs = [python(_WRITER, store_url, str(store_home), run_id) for run_id in runs]
    # This process writes to the first run at the same time.
    futures = [
        store.journal_writer.submit(JournalWrites(calls=[call(f"r/2/{i}", runs[0])]))
        for i in range(300)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert 1 <= int(out) <= 300
    for f in futures:
        f.result(60)
    counts = [len(store.load_journal(run_id).calls) for run_id in runs]
    assert counts == [600, 300, 300]


def test_coroutines_share_a_group_and_its_error(store: SqlStore) -> None:
    new_run(store)
    writer = store.journal_writer

    async def batch(bad: bool) -> list[BaseException | None]:
        release = hold(writer)
        writes = [JournalWrites(calls=[call(f"r/{int(bad)}/{i}")]) for i in range(20)]
        if bad:
            writes.append(JournalWrites(calls=[call("r/1/0", "no-such-run")]))
        tasks = [asyncio.ensure_future(writer.write(w)) for w in writes]
        await asyncio.sleep(0.01)
        assert not any(t.done() for t in tasks)  # queued behind the held writer
        release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    assert asyncio.run(batch(False)) == [None] * 20
    assert writer.groups_committed == 1
    outcomes = asyncio.run(batch(True))
    assert len(outcomes) == 21 and all(isinstance(o, RunNotFoundError) for o in outcomes)
    assert store.find_model_call("run-1", "r/1/0") is None
    assert writer.groups_failed == 1


def test_a_journaled_call_keeps_what_its_started_node_recorded(store: SqlStore) -> None:
    new_run(store)
    store.start_node(
        NodeStart(
            "run-1",
            "r/1/0",
            "llm",
            parent_id="r/1",
            model="m0",
            request_hash="h",
            request="the prompt",
            meta={"attempt": 1, "clock": 2.0},
        )
    )
    bare = ModelCall(
        run_id="run-1",
        node_id="r/1/0",
        kind="llm",
        request_hash="h",
        response="the answer",
        meta={"clock": 3.0, "provider": "sim"},
    )
    store.journal_writer.submit(JournalWrites(calls=[bare])).result(10)
    found = store.find_model_call("run-1", "r/1/0")
    assert found is not None and found.status == "completed"
    assert (found.parent_id, found.model, found.request) == ("r/1", "m0", "the prompt")
    assert found.response == "the answer"
    assert found.meta == {"attempt": 1, "clock": 3.0, "provider": "sim"}
    # What the call says wins over what the start recorded.
    store.start_node(NodeStart("run-1", "r/1/1", "llm", parent_id="r/1", request="old"))
    told = ModelCall("run-1", "r/1/1", "llm", "h", "a", parent_id="r/9", request="new")
    store.journal_writer.submit(JournalWrites(calls=[told])).result(10)
    found = store.find_model_call("run-1", "r/1/1")
    assert found is not None and (found.parent_id, found.request) == ("r/9", "new")


def test_some_calls_journaled_already_and_the_rest_new(store: SqlStore) -> None:
    new_run(store)
    store.record_model_call(call("r/1/0"))
    first = store.find_model_call("run-1", "r/1/0")
    again = ModelCall("run-1", "r/1/0", "llm", "h", "a later answer")
    store.journal_writer.submit(JournalWrites(calls=[call("r/1/1"), again])).result(10)
    assert store.find_model_call("run-1", "r/1/0") == first
    assert store.find_model_call("run-1", "r/1/1") is not None
    wrong = call("r/1/0", request_hash="h2")
    with pytest.raises(JournalConflictError):
        store.journal_writer.submit(JournalWrites(calls=[call("r/1/2"), wrong])).result(10)
    assert store.find_model_call("run-1", "r/1/2") is None


def _writer_backend_pid(store: SqlStore) -> int:
    """The Postgres backend of the writer's connection (read on the writer thread)."""
    pids: list[int] = []

    def note(conn: sa.Connection) -> None:
        pids.append(int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()))

    connection = store._writer_conn  # pyright: ignore[reportPrivateUsage]
    assert connection is not None
    store.journal_writer.call(lambda: connection.run(note)).result(10)
    return pids[0]


def test_the_postgres_writer_keeps_one_connection_and_replaces_a_lost_one(
    postgres_schema_url: str, store_home: Any
) -> None:
    store = open_store(postgres_schema_url, store_home)
    try:
        new_run(store)
        writer = store.journal_writer
        writer.submit(JournalWrites(calls=[call("r/1/0")])).result(10)
        pid = _writer_backend_pid(store)
        writer.submit(JournalWrites(calls=[call("r/1/1")], events=[started()])).result(10)
        assert _writer_backend_pid(store) == pid  # no checkout per group
        with store.engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        # The next group meets the dead connection, and is retried on a new one.
        writer.submit(JournalWrites(calls=[call("r/1/2")])).result(10)
        assert store.find_model_call("run-1", "r/1/2") is not None
        assert _writer_backend_pid(store) != pid
        assert writer.groups_failed == 0
    finally:
        store.close()


def test_a_long_batch_of_events_lets_queued_journal_writes_in_between_slices() -> None:
    committed: list[str] = []
    writer: GroupCommitWriter

    def commit(writes: JournalWrites) -> None:
        committed.append(f"{len(writes.events)} events" if writes.events else "calls")
        if len(committed) == 1:  # a reply is journaled while the first slice commits
            late.append(writer.submit(JournalWrites(calls=[call("r/1/0")])))
            late.append(writer.submit(JournalWrites(events=[started()])))

    late: list[Future[None]] = []
    writer = GroupCommitWriter(commit, events_slice=4)
    try:
        batch = writer.submit(JournalWrites(events=[started() for _ in range(10)]))
        batch.result(10)
        for future in late:
            future.result(10)
    finally:
        writer.close()
    # The queued events wait for the batch's last slice: events keep their order.
    assert committed == ["4 events", "calls", "4 events", "2 events", "1 events"]
    assert writer.groups_committed == 5 and writer.writes_committed == 12


def test_a_failed_slice_fails_the_batch_and_skips_its_later_slices() -> None:
    committed: list[int] = []

    def commit(writes: JournalWrites) -> None:
        if committed:
            raise RuntimeError("the store is gone")
        committed.append(len(writes.events))

    writer = GroupCommitWriter(commit, events_slice=4)
    try:
        batch = writer.submit(JournalWrites(events=[started() for _ in range(10)]))
        with pytest.raises(RuntimeError, match="gone"):
            batch.result(10)
    finally:
        writer.close()
    assert committed == [4] and writer.groups_failed == 1


def test_long_batches_of_events_are_committed_in_slices(store: SqlStore) -> None:
    new_run(store)
    counter = Commits(store.engine)
    events = [started() for _ in range(600)]
    store.journal_writer.submit(JournalWrites(events=events)).result(10)
    counter.close()
    assert counter.count == 3  # 256 + 256 + 88
    assert [e.seq for e in store.list_events("run-1")] == list(range(600))


def test_postgres_journals_new_calls_without_reading_them_first(
    postgres_schema_url: str, store_home: Any
) -> None:
    store = open_store(postgres_schema_url, store_home)
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.current_thread().name == "rlm-journal-writer":
            statements.append(statement)

    try:
        new_run(store)
        store.journal_writer.submit(JournalWrites(calls=[call("r/1/0")])).result(10)
        event.listen(store.engine, "before_cursor_execute", note)
        try:
            calls = [call(f"r/1/{i}") for i in range(1, 40)]
            store.journal_writer.submit(JournalWrites(calls=calls)).result(10)
            assert not [s for s in statements if s.lstrip().upper().startswith("SELECT")]
            # A call journaled already is skipped by the upsert: then its hash is read.
            again = [call("r/1/0"), call("r/1/40")]
            store.journal_writer.submit(JournalWrites(calls=again)).result(10)
            assert [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        finally:
            event.remove(store.engine, "before_cursor_execute", note)
        assert len(store.load_journal("run-1").calls) == 41
    finally:
        store.close()


def test_numbers_json_has_no_form_for_are_journaled_too(store: SqlStore) -> None:
    new_run(store)
    odd = ModelCall("run-1", "r/1/0", "llm", "h", "a", cost_usd=float("nan"))
    event = RunStarted(run_id="run-1", question="q", model="m", sub_model="m", ts=float("inf"))
    store.journal_writer.submit(JournalWrites(calls=[odd, call("r/1/1")])).result(10)
    store.journal_writer.submit(JournalWrites(events=[event, started()])).result(10)
    assert set(store.load_journal("run-1").calls) == {"r/1/0", "r/1/1"}
    assert len(store.list_events("run-1")) == 2


async def test_a_settling_writer_commits_before_the_loop_runs_later_callbacks() -> None:
    """The next request of a fan-out (a callback scheduled after the write) starts only
    once the reply queued before it is durable."""
    order: list[str] = []

    def slow_commit(writes: JournalWrites) -> None:
        time.sleep(0.05)  # without the settle, the loop runs `later` meanwhile
        order.append("commit")

    writer = GroupCommitWriter(slow_commit, settle_s=10.0)
    try:
        task = asyncio.ensure_future(writer.write(JournalWrites(calls=[call("r/1/0")])))
        await asyncio.sleep(0)  # the write is queued, its settle scheduled
        asyncio.get_running_loop().call_soon(order.append, "later")
        await task
        await asyncio.sleep(0)
    finally:
        writer.close()
    assert order == ["commit", "later"]


async def test_a_settle_that_runs_out_stops_waiting_for_a_while() -> None:
    """A store another process holds locked is not waited for at every write, and a slow
    commit (a checkpoint) does not turn the waits off for good."""
    release = threading.Event()
    order: list[str] = []

    def held_commit(writes: JournalWrites) -> None:
        release.wait(10)
        order.append("commit")

    writer = GroupCommitWriter(held_commit, settle_s=0.05)
    loop = asyncio.get_running_loop()
    try:
        first = asyncio.ensure_future(writer.write(JournalWrites(calls=[call("r/1/0")])))
        await asyncio.sleep(0)
        loop.call_soon(order.append, "after the first settle")
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(writer.write(JournalWrites(calls=[call("r/1/1")])))
        await asyncio.sleep(0)  # the write is queued, its settle scheduled
        await asyncio.sleep(0)  # the settle returned at once: the waits are paused
        order.append("after the second settle")
        assert writer.settles_run_out == 1
        await asyncio.sleep(SETTLE_PAUSE_S)
        third = asyncio.ensure_future(writer.write(JournalWrites(calls=[call("r/1/2")])))
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the pause is over: this settle waited (and ran out) again
        assert writer.settles_run_out == 2
        release.set()
        await asyncio.gather(first, second, third)
    finally:
        writer.close()
    assert order[:2] == ["after the first settle", "after the second settle"]
    assert order.count("commit") >= 2
