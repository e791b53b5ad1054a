"""Resume when a replayed cell diverges: restored from its namespace snapshot, or an
error with the hint, or gone on with under ``accept_divergence``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from rlm_engine import RLM
from rlm_engine.engine.journal_store import StoreJournal
from rlm_engine.engine.result import RunResult
from rlm_engine.errors import ProviderError
from rlm_engine.events import Event, SandboxRestarted
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.store import NewRun, SqlStore, open_store
from rlm_engine.store.blobs import LocalBlobStore
from rlm_engine.store.sql_journal import snapshot_refs
from rlm_engine.types import Message


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'rlm.db'}", tmp_path / "home")
    yield opened
    opened.close()


def counting_cell(counter: Path, extra: str = "") -> str:
    """A cell whose output depends on state outside the replay: a file it counts in."""
    return (
        "```repl\nimport pathlib\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "seen = [n] * 3\n"
        "def total(xs):\n    return sum(xs)\n"
        f"{extra}"
        "print('run', n)\n```"
    )


SECOND = "```repl\nprint(total(seen))\n```"
LAST = "```repl\nFINAL(f'seen={seen}')\n```"


def turns_of(messages: Sequence[Message]) -> int:
    return sum(m.role == "assistant" for m in messages)


def stops_after_two(first: str) -> ScriptedModel:
    """Two turns, then the provider goes down: the run stops with two cells journaled."""

    def reply(messages: Sequence[Message]) -> str:
        turn = turns_of(messages)
        if turn >= 2:
            raise ProviderError("the provider is down", kind="server")
        return [first, SECOND][turn]

    return ScriptedModel(reply)


def only_new_turns(first_new: int, replies: Callable[[int], str]) -> ScriptedModel:
    def reply(messages: Sequence[Message]) -> str:
        turn = turns_of(messages)
        if turn < first_new:
            raise AssertionError(f"journaled root turn {turn + 1} was asked again")
        return replies(turn)

    return ScriptedModel(reply)


def down_at_third(cell: str) -> Callable[[int], str]:
    """Replies of a resume from turn 1: ``cell``, then SECOND, then the provider is down."""

    def reply(turn: int) -> str:
        if turn >= 2:
            raise ProviderError("the provider is down again", kind="server")
        return [cell, SECOND][turn]

    return reply


def run(
    rlm: RLM, journal: StoreJournal, run_id: str, events: list[Event] | None = None
) -> RunResult:
    async def go() -> RunResult:
        try:
            return await rlm.arun("count", "some context", run_id=run_id, journal=journal)
        finally:
            await rlm.aclose()

    if events is not None:
        rlm._listeners.append(events.append)  # pyright: ignore[reportPrivateUsage]
    return asyncio.run(go())


def new_run(store: SqlStore) -> str:
    run_id = uuid.uuid4().hex[:12]
    store.create_run(NewRun(run_id=run_id, question="count"))
    return run_id


def rlm(root: ScriptedModel, **kw: Any) -> RLM:
    return RLM(root, isolation="none", **kw)


def test_a_diverging_cell_is_restored_from_its_snapshot(store: SqlStore, tmp_path: Path) -> None:
    counter = tmp_path / "counter.txt"
    run_id = new_run(store)
    first = run(rlm(stops_after_two(counting_cell(counter))), StoreJournal(store, run_id), run_id)
    assert first.stop_reason == "error" and "provider is down" in first.stop_detail
    kept = [c.meta.get("snapshot") for c in store.load_journal(run_id).cells]
    assert all(isinstance(k, dict) and k.get("ref") for k in kept), kept
    with store.engine.connect() as conn:  # what garbage collection must keep
        assert {k["ref"] for k in kept if isinstance(k, dict)} <= snapshot_refs(conn)

    root = only_new_turns(2, lambda turn: LAST)
    events: list[Event] = []
    resumed = run(rlm(root), StoreJournal(store, run_id), run_id, events)
    assert resumed.stop_reason == "final", resumed.stop_detail
    # The variables are the first run's, not the ones the divergent replay computed.
    assert resumed.answer == "seen=[1, 1, 1]"
    assert counter.read_text() == "2"  # the cell did run again, and printed "run 2"
    assert len(root.calls) == 1  # only the turn the journal lacked
    restarts = [e for e in events if isinstance(e, SandboxRestarted)]
    assert len(restarts) == 1 and "restored from the snapshot" in restarts[0].reason
    cells = [n for n in resumed.tree.walk() if n.kind == "cell"]
    assert cells[0].detail.get("restored_from_snapshot") is True
    assert cells[1].detail.get("replayed") is True  # matched once the namespace was back
    # The root's new prompt carries the journaled output, not the divergent one.
    prompt = "\n".join(m.content for m in root.calls[0])
    assert "run 1" in prompt and "run 2" not in prompt
    # An offline replay restores it the same way, with no model at all.
    replay = StoreJournal(store, run_id, read_only=True)
    again = run(rlm(only_new_turns(99, lambda turn: LAST)), replay, run_id)
    assert again.stop_reason == "final" and again.answer == "seen=[1, 1, 1]", again.stop_detail


def test_an_unpicklable_namespace_fails_with_the_hint(store: SqlStore, tmp_path: Path) -> None:
    counter = tmp_path / "counter.txt"
    cell = counting_cell(counter, extra="handle = open(p)\n")
    run_id = new_run(store)
    run(rlm(stops_after_two(cell)), StoreJournal(store, run_id), run_id)
    notes = [c.meta["snapshot"]["note"] for c in store.load_journal(run_id).cells]
    assert all("handle" in note for note in notes), notes

    root = only_new_turns(2, lambda turn: LAST)
    resumed = run(rlm(root), StoreJournal(store, run_id), run_id)
    assert resumed.stop_reason == "error"
    assert "NondeterminismError" in resumed.stop_detail
    assert "r/1" in resumed.stop_detail and "'run 1'" in resumed.stop_detail
    assert "handle" in resumed.stop_detail  # why no snapshot could be used
    assert resumed.cause is not None and "--accept-divergence" in resumed.cause.hint
    assert root.calls == []


def test_a_damaged_snapshot_counts_as_none(store: SqlStore, tmp_path: Path) -> None:
    # Snapshot blobs are not fsynced: after a machine crash one may be torn. A resume
    # must then fall back to the typed error, never load the damaged bytes.
    counter = tmp_path / "counter.txt"
    run_id = new_run(store)
    run(rlm(stops_after_two(counting_cell(counter))), StoreJournal(store, run_id), run_id)
    blobs = store.blobs
    assert isinstance(blobs, LocalBlobStore)
    for cell in store.load_journal(run_id).cells:
        blobs.path(cell.meta["snapshot"]["ref"]).write_bytes(b"torn")

    root = only_new_turns(2, lambda turn: LAST)
    resumed = run(rlm(root), StoreJournal(store, run_id), run_id)
    assert resumed.stop_reason == "error"
    assert "NondeterminismError" in resumed.stop_detail and "r/1" in resumed.stop_detail
    assert root.calls == []


def test_accept_divergence_goes_on_and_tells_the_root(store: SqlStore, tmp_path: Path) -> None:
    counter = tmp_path / "counter.txt"
    cell = counting_cell(counter, extra="handle = open(p)\n")
    run_id = new_run(store)
    run(rlm(stops_after_two(cell)), StoreJournal(store, run_id), run_id)
    journaled = store.load_journal(run_id)

    root = only_new_turns(1, lambda turn: [cell, SECOND, LAST][turn])
    journal = StoreJournal(store, run_id, accept_divergence=True)
    resumed = run(rlm(root), journal, run_id)
    assert resumed.stop_reason == "final", resumed.stop_detail
    assert resumed.answer == "seen=[2, 2, 2]"
    # Root turn 1 came from the journal; from the diverged cell on the root is asked anew.
    assert len(root.calls) == 2
    told = root.calls[0][-1].content
    assert "cell 1.1 (r/1)" in told and "'run 1'" in told and "'run 2'" in told
    assert "earlier cells printed something different" in told
    # The superseded entries stay; the new history has node ids of its own.
    after = store.load_journal(run_id)
    assert set(journaled.calls) <= set(after.calls)
    assert all(after.calls[k].response == c.response for k, c in journaled.calls.items())
    assert any(k.startswith("r~1/") for k in after.calls)
    assert any(c.node_id == "r~1/1" and "run 2" in (c.output or "") for c in after.cells)


def test_a_later_resume_follows_the_epoch_an_accepted_divergence_began(
    store: SqlStore, tmp_path: Path
) -> None:
    counter = tmp_path / "counter.txt"
    # Prints 1 on the first run and 2 on every run after it.
    cell = counting_cell(counter, extra="handle = open(p)\nn = min(n, 2)\nseen = [n] * 3\n")
    run_id = new_run(store)
    run(rlm(stops_after_two(cell)), StoreJournal(store, run_id), run_id)

    accepted = StoreJournal(store, run_id, accept_divergence=True)
    first_resume = run(rlm(only_new_turns(1, down_at_third(cell))), accepted, run_id)
    assert first_resume.stop_reason == "error" and "down again" in first_resume.stop_detail

    # No flag now: the cell again differs from its first record, matches the one the
    # accepted resume journaled, and the run follows that history without asking again.
    root = only_new_turns(2, lambda turn: LAST)
    second_resume = run(rlm(root), StoreJournal(store, run_id), run_id)
    assert second_resume.stop_reason == "final", second_resume.stop_detail
    assert second_resume.answer == "seen=[2, 2, 2]"
    assert len(root.calls) == 1
    assert "earlier cells printed something different" not in root.calls[0][-1].content


def test_a_killed_repl_comes_back_from_the_latest_snapshot_not_by_rerunning(
    store: SqlStore, tmp_path: Path
) -> None:
    counter = tmp_path / "counter.txt"
    stubborn = (
        "```repl\nimport time\nwhile True:\n    try:\n        time.sleep(10)\n"
        "    except KeyboardInterrupt:\n        pass\n```"
    )
    replies = [counting_cell(counter), stubborn, "```repl\nFINAL(f'{seen} {total(seen)}')\n```"]
    root = ScriptedModel(lambda m: replies[min(turns_of(m), 2)])
    run_id = new_run(store)
    events: list[Event] = []
    result = run(rlm(root, cell_timeout_s=1.0), StoreJournal(store, run_id), run_id, events)
    assert result.answer == "[1, 1, 1] 3", result.stop_detail
    assert any(isinstance(e, SandboxRestarted) for e in events)
    assert counter.read_text() == "1"  # the first cell was not run a second time


def test_a_cell_that_diverges_from_every_epoch_is_restored_from_the_latest(
    store: SqlStore, tmp_path: Path
) -> None:
    counter = tmp_path / "counter.txt"
    # Only the first run's namespace holds an open file: later ones pickle.
    cell = counting_cell(counter, extra="handle = open(p) if n == 1 else None\n")
    run_id = new_run(store)
    run(rlm(stops_after_two(cell)), StoreJournal(store, run_id), run_id)

    accepted = StoreJournal(store, run_id, accept_divergence=True)
    run(rlm(only_new_turns(1, down_at_third(cell))), accepted, run_id)  # epoch 1: "run 2"

    # "run 3" now matches no record: the namespace of epoch 1's snapshot comes back, and
    # its journaled root turn (whose prompt named the change) is answered from the journal.
    root = only_new_turns(2, lambda turn: LAST)
    events: list[Event] = []
    resumed = run(rlm(root), StoreJournal(store, run_id), run_id, events)
    assert resumed.stop_reason == "final", resumed.stop_detail
    assert resumed.answer == "seen=[2, 2, 2]"
    assert len(root.calls) == 1
    assert any(isinstance(e, SandboxRestarted) for e in events)
