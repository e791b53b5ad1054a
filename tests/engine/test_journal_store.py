"""The journal in the durable store: read once per run, written through the group commit."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from rlm_engine import RLM
from rlm_engine.engine.journal import MemoryJournal
from rlm_engine.engine.journal_store import StoreJournal
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.sandbox.local import LocalSandbox
from rlm_engine.store import NewRun, SqlStore, open_store
from rlm_engine.store.records import JournalWrites
from rlm_engine.store.tables import cells, nodes
from rlm_engine.types import Completion, Message

POSTGRES_URL = os.environ.get(
    "RLM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TURNS = [
    "```repl\nwords = context.split()\nprint(len(words))\n```",
    "```repl\nanswers = llm_query_batched([f'upper: {w}' for w in words])\nprint(answers)\n```",
    "```repl\nFINAL(' '.join(answers))\n```",
]
CONTEXT = "a quiet day in the long grass"
ANSWER = CONTEXT.upper()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """A fresh store on each backend (Postgres in a private schema, dropped afterwards)."""
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'rlm.db'}", tmp_path / "home")
        yield opened
        opened.close()
        return
    schema = f"rlm_test_engine_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    opened = open_store(url.render_as_string(hide_password=False), tmp_path / "home")
    try:
        yield opened
    finally:
        opened.close()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def root_model() -> ScriptedModel:
    return ScriptedModel(lambda m: TURNS[min(sum(x.role == "assistant" for x in m), 2)])


def sub_model() -> ScriptedModel:
    return ScriptedModel(lambda m: m[-1].content.removeprefix("upper: ").upper())


def refusing() -> ScriptedModel:
    def never(messages: Sequence[Message]) -> str:
        raise AssertionError("a journaled call was made again")

    return ScriptedModel(never)


def no_per_call_lookups(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the journal was queried for a single step")

    monkeypatch.setattr(store, "find_model_call", refuse)
    monkeypatch.setattr(store, "list_cells", refuse)


def run(rlm: RLM, journal: Any, run_id: str):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        try:
            return await rlm.arun("shout it", CONTEXT, run_id=run_id, journal=journal)
        finally:
            await rlm.aclose()

    return asyncio.run(go())


def new_run(store: SqlStore) -> str:
    run_id = uuid.uuid4().hex[:12]
    store.create_run(NewRun(run_id=run_id, question="shout it"))
    return run_id


def test_a_fresh_run_reads_its_journal_once_and_journals_every_step(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = new_run(store)
    no_per_call_lookups(store, monkeypatch)
    journal = StoreJournal(store, run_id)
    result = run(RLM(root_model(), sub_model()), journal, run_id)
    assert result.answer == ANSWER
    assert journal.loads == 1
    snapshot = store.load_journal(run_id)
    assert len([c for c in snapshot.calls.values() if c.kind == "llm"]) == 7
    assert len(snapshot.calls) == 7 + 3
    assert all(c.status == "completed" for c in snapshot.cells) and len(snapshot.cells) == 3
    # The seven sub-calls of one batch were journaled in fewer transactions than calls.
    assert store.journal_writer.groups_committed < len(snapshot.calls) + 2 * len(snapshot.cells)


def test_resume_loads_the_journal_once_and_makes_only_the_missing_calls(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = new_run(store)
    run(RLM(root_model(), sub_model()), StoreJournal(store, run_id), run_id)
    # As if the process died waiting for the last root turn: it and its cell are not journaled.
    journaled = store.load_journal(run_id)
    turns = [k for k, c in journaled.calls.items() if c.kind == "root_turn"]
    last_turn = max(turns, key=lambda k: int(k.split("/")[1]))
    after = int(last_turn.split("/")[1])
    later = [c.node_id for c in journaled.cells if int(c.node_id.split("/")[1]) > after]
    assert later
    with store.engine.begin() as conn:
        conn.execute(sa.delete(nodes).where(nodes.c.run_id == run_id, nodes.c.node_id == last_turn))
        conn.execute(sa.delete(cells).where(cells.c.run_id == run_id, cells.c.node_id.in_(later)))
    assert last_turn not in store.load_journal(run_id).calls
    no_per_call_lookups(store, monkeypatch)
    root = root_model()
    journal = StoreJournal(store, run_id)
    resumed = run(RLM(root, refusing()), journal, run_id)
    assert resumed.answer == ANSWER
    assert len(root.calls) == 1  # only the lost root turn; every sub-call came from the journal
    assert journal.loads == 1
    replay = StoreJournal(store, run_id, read_only=True)
    again = run(RLM(refusing(), refusing()), replay, run_id)
    assert again.answer == ANSWER and replay.loads == 1


class SlowJournal(MemoryJournal):
    """Journals a reply only once the next sub-call has started."""

    def __init__(self, second_started: asyncio.Event) -> None:
        super().__init__()
        self.second_started = second_started

    async def record_call(
        self,
        node_id: str,
        role: str,
        request_hash: str,
        completion: Completion,
        request: str | None = None,
    ) -> None:
        if role == "sub":
            await asyncio.wait_for(self.second_started.wait(), 5)
        await super().record_call(node_id, role, request_hash, completion, request)


def test_no_concurrency_slot_is_held_while_a_reply_is_journaled() -> None:
    started: list[str] = []
    second = asyncio.Event()

    def sub(messages: Sequence[Message]) -> str:
        started.append(messages[-1].content)
        if len(started) == 2:
            second.set()
        return "ok"

    turns = [
        "```repl\nFINAL(' '.join(llm_query_batched(['one', 'two'])))\n```",
        "```repl\nFINAL('unreachable')\n```",
    ]
    root = ScriptedModel(lambda m: turns[min(sum(x.role == "assistant" for x in m), 1)])
    journal = SlowJournal(second)
    # One slot: the second call can only start if the first gave its slot back before
    # its reply was journaled (otherwise the first waits for the journal forever).
    result = run(RLM(root, ScriptedModel(sub), max_concurrency=1), journal, "slots")
    assert result.answer == "ok ok", result.answer  # no "[error: TimeoutError ...]" in it
    assert started == ["one", "two"]


def test_on_sqlite_a_freed_slot_sends_its_request_only_once_the_reply_before_is_durable(
    tmp_path: Path,
) -> None:
    """What a kill -9 costs: the request a freed slot carries goes out after the replies
    the engine read before it are committed, so a crash re-pays only calls in flight."""
    store = open_store(f"sqlite:///{tmp_path / 'rlm.db'}", tmp_path / "home")
    run_id = new_run(store)
    durable_at_send: list[int] = []

    def sub(messages: Sequence[Message]) -> str:
        # A separate connection sees committed rows only.
        with sa.create_engine(f"sqlite:///{tmp_path / 'rlm.db'}").connect() as conn:
            query = sa.select(sa.func.count()).where(
                nodes.c.run_id == run_id, nodes.c.kind == "llm", nodes.c.status == "completed"
            )
            durable_at_send.append(int(conn.execute(query).scalar_one()))
        return "ok"

    prompts = [f"'p{i}'" for i in range(6)]
    turns = [
        f"```repl\nFINAL(' '.join(llm_query_batched([{', '.join(prompts)}])))\n```",
        "```repl\nFINAL('unreachable')\n```",
    ]
    root = ScriptedModel(lambda m: turns[min(sum(x.role == "assistant" for x in m), 1)])
    try:
        result = run(
            RLM(root, ScriptedModel(sub), max_concurrency=1), StoreJournal(store, run_id), run_id
        )
    finally:
        store.close()
    assert result.answer == " ".join(["ok"] * 6)
    # One slot: the n-th request is sent after the n-1 replies before it were committed.
    assert durable_at_send == list(range(6))


def test_a_cell_runs_while_its_start_commits_and_is_served_only_once_it_is_durable(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cell's start (with the root reply before it) is committed while the cell runs;
    the host serves the cell's sub-call only once that commit is durable."""
    run_id = new_run(store)
    sent, asked = threading.Event(), threading.Event()
    overlapped: list[bool] = []
    durable_at_call: list[tuple[int, int]] = []
    writer = store.journal_writer
    commit = writer._commit  # pyright: ignore[reportPrivateUsage]

    def slow_commit(writes: JournalWrites) -> None:
        if writes.cell_starts and not overlapped:
            # Held until the cell has been sent to the sandbox (or for 10 s, if it never is),
            # then for as long as it takes a sub-call served too early to be asked.
            overlapped.append(sent.wait(10))
            asked.wait(0.5)
        commit(writes)

    monkeypatch.setattr(writer, "_commit", slow_commit)
    execute_at = LocalSandbox.execute_at

    async def sending(self: LocalSandbox, code: str, **kwargs: Any) -> Any:
        sent.set()
        return await execute_at(self, code, **kwargs)

    monkeypatch.setattr(LocalSandbox, "execute_at", sending)

    def sub(messages: Sequence[Message]) -> str:
        with store.engine.connect() as conn:  # not the writer's: sees committed rows only
            started = conn.execute(
                sa.select(sa.func.count()).where(cells.c.run_id == run_id)
            ).scalar_one()
            roots = conn.execute(
                sa.select(sa.func.count()).where(
                    nodes.c.run_id == run_id, nodes.c.kind == "root_turn"
                )
            ).scalar_one()
        durable_at_call.append((int(started), int(roots)))
        asked.set()
        return "ok"

    turns = ["```repl\nFINAL(llm_query('p'))\n```"]
    root = ScriptedModel(lambda m: turns[0])
    result = run(RLM(root, ScriptedModel(sub)), StoreJournal(store, run_id), run_id)
    assert result.answer == "ok"
    assert overlapped == [True]  # the cell was on its way before its start was committed
    assert durable_at_call == [(1, 1)]  # its start and the root reply, durable


def test_a_root_turn_and_its_cell_share_one_commit_and_the_run_ends_durable(
    store: SqlStore,
) -> None:
    """A root reply and a cell's outcome are held back: the next cell start commits them
    with it, and the run's end flushes the rest."""
    turns = 12
    replies = [f"```repl\nprint({i})\n```" for i in range(turns)] + ["```repl\nFINAL('ok')\n```"]
    model = ScriptedModel(lambda m: replies[sum(x.role == "assistant" for x in m)])
    run_id = new_run(store)
    writer = store.journal_writer
    before = writer.groups_committed
    result = run(RLM(model, model, max_iterations=turns + 5), StoreJournal(store, run_id), run_id)
    assert result.answer == "ok"
    snapshot = store.load_journal(run_id)
    # Everything is durable once arun returns: every root turn and every finished cell.
    assert len([c for c in snapshot.calls.values() if c.kind == "root_turn"]) == turns + 1
    assert len(snapshot.cells) == turns + 1
    assert all(c.status == "completed" for c in snapshot.cells)
    # Each cell start carries the held root reply and the previous cell's outcome with
    # it, and the run's end commits the last outcome: 13 + 1 commits instead of 3 * 13.
    assert writer.groups_committed - before == turns + 2


def test_held_back_writes_are_durable_when_the_run_stops_on_a_timeout(store: SqlStore) -> None:
    """A run stopped by max_seconds during a root call still journals the last root reply
    and the last cell's outcome, which were held back for the next commit."""

    async def reply(messages: list[Message]) -> str:
        turn = sum(m.role == "assistant" for m in messages)
        if turn == 2:
            await asyncio.sleep(30)  # the run's deadline falls here
        return f"```repl\nprint({turn})\n```"

    run_id = new_run(store)
    model = ScriptedModel(reply)
    result = run(RLM(model, model, max_seconds=1.0), StoreJournal(store, run_id), run_id)
    assert result.stop_reason == "timeout"
    snapshot = store.load_journal(run_id)
    assert len([c for c in snapshot.calls.values() if c.kind == "root_turn"]) == 2
    assert [c.status for c in snapshot.cells] == ["completed", "completed"]
