"""Journaled runs: offline replay, resume after a crash, and divergence detection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from rlm_engine import RLM
from rlm_engine.engine.journal import MemoryJournal, RecordedCell
from rlm_engine.events import CellFinished, Event
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.types import Message

TURNS = [
    "```repl\nwords = context.split()\nprint(len(words))\n```",
    "```repl\nanswers = llm_query_batched([f'upper: {w}' for w in words])\nprint(answers)\n```",
    "```repl\nFINAL(' '.join(answers))\n```",
]


def root_model() -> ScriptedModel:
    return ScriptedModel(lambda m: TURNS[min(sum(x.role == "assistant" for x in m), 2)])


def sub_model() -> ScriptedModel:
    return ScriptedModel(lambda m: m[-1].content.removeprefix("upper: ").upper())


def refusing(name: str) -> ScriptedModel:
    def never(messages: Sequence[Message]) -> str:
        raise AssertionError(f"{name} was called during replay")

    # Same model name as the original run: a resume uses the run's own settings.
    return ScriptedModel(never)


def run(rlm: RLM, journal: MemoryJournal, run_id: str | None = None):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        try:
            return await rlm.arun("shout it", "a quiet day", run_id=run_id, journal=journal)
        finally:
            await rlm.aclose()

    return asyncio.run(go())


def test_a_journaled_run_replays_offline_with_no_model_calls() -> None:
    journal = MemoryJournal()
    first = run(RLM(root_model(), sub_model()), journal)
    assert first.answer == "A QUIET DAY"
    assert journal.model_calls_recorded == 6  # 3 root turns + 3 sub-calls
    assert all(cell.output_hash for cell in journal.cells.values())

    replay = run(RLM(refusing("root"), refusing("sub")), journal, first.run_id)
    assert replay.answer == first.answer and replay.stop_reason == "final"
    assert journal.model_calls_recorded == 6
    replayed = [n for n in replay.tree.walk() if n.detail.get("replayed")]
    assert len(replayed) == 6 + 3  # every model call and every cell


def test_resume_makes_only_the_calls_the_journal_lacks() -> None:
    journal = MemoryJournal()
    first = run(RLM(root_model(), sub_model()), journal)
    # As if the process died while the last cell ran: its root reply is journaled, the
    # cell's outcome and everything after it are not.
    last_cell = max(journal.cells, key=lambda k: int(k.split("/")[1]))
    journal.cells[last_cell] = RecordedCell(journal.cells[last_cell].code_hash, None)
    root = refusing("root")
    resumed = run(RLM(root, refusing("sub")), journal, first.run_id)
    assert resumed.answer == "A QUIET DAY"
    assert journal.model_calls_recorded == 6


def test_resume_after_losing_the_last_root_turn_calls_the_model_once() -> None:
    journal = MemoryJournal()
    first = run(RLM(root_model(), sub_model()), journal)
    last_turn = max(
        (k for k, (role, _) in journal.calls.items() if role == "root"),
        key=lambda k: int(k.split("/")[1]),
    )
    del journal.calls[last_turn]
    for key in [k for k in journal.cells if int(k.split("/")[1]) > int(last_turn.split("/")[1])]:
        del journal.cells[key]
    root = root_model()
    resumed = run(RLM(root, refusing("sub")), journal, first.run_id)
    assert resumed.answer == "A QUIET DAY"
    assert len(root.calls) == 1


def test_replay_that_diverges_stops_with_a_typed_error() -> None:
    journal = MemoryJournal()
    first = run(RLM(root_model(), sub_model()), journal)
    some_cell = next(iter(journal.cells))
    journal.cells[some_cell] = RecordedCell(journal.cells[some_cell].code_hash, "0" * 64)
    replay = run(RLM(refusing("root"), refusing("sub")), journal, first.run_id)
    assert replay.stop_reason == "error"
    assert "NondeterminismError" in replay.stop_detail and some_cell in replay.stop_detail


def test_randomness_in_the_repl_replays_identically() -> None:
    turns = ["```repl\nimport random\nprint(random.random())\n```", "FINAL(done)"]

    def root() -> ScriptedModel:
        return ScriptedModel(lambda m: turns[min(sum(x.role == "assistant" for x in m), 1)])

    journal = MemoryJournal()
    first = run(RLM(root()), journal)
    replay = run(RLM(refusing("root")), journal, first.run_id)
    assert replay.stop_reason == "final", replay.stop_detail


CLOCK_CELL = (
    "```repl\n"
    "import time, datetime\n"
    "t0 = time.time()\n"
    "time.sleep(0.05)\n"
    "print(t0, time.time_ns(), datetime.datetime.now(), datetime.date.today(),\n"
    "      datetime.datetime.now(datetime.timezone.utc).isoformat(), time.time() - t0)\n"
    "```"
)


def test_the_time_read_in_the_repl_replays_identically() -> None:
    turns = [CLOCK_CELL, CLOCK_CELL, "FINAL(done)"]

    def root() -> ScriptedModel:
        return ScriptedModel(lambda m: turns[min(sum(x.role == "assistant" for x in m), 2)])

    def outputs_of(events: list[Event]) -> list[str]:
        return [e.output for e in events if isinstance(e, CellFinished)]

    journal = MemoryJournal()
    seen: list[Event] = []
    first = run(RLM(root(), on_event=seen.append), journal)
    assert first.stop_reason == "final", first.stop_detail
    clocks = [cell.clock for cell in journal.cells.values()]
    assert len(clocks) == 2 and clocks[0] is not None and clocks[1] is not None
    t0, t0_ns, *_, elapsed = outputs_of(seen)[0].split()
    assert float(t0) == pytest.approx(clocks[0] + 1e-6, abs=1e-6)
    assert int(t0_ns) == round(clocks[0] * 1e9) + 50_000_000 + 2_000  # after the sleep
    # sleeping moves the clock on; reads move it by a microsecond each, computing not at all
    # (at 1.8e9 s a float resolves about 0.24 µs)
    assert float(elapsed) == pytest.approx(0.05 + 5e-6, abs=1e-6)

    time.sleep(0.05)  # the replay runs at a later real time
    again: list[Event] = []
    replay = run(RLM(refusing("root"), on_event=again.append), journal, first.run_id)
    assert replay.stop_reason == "final", replay.stop_detail
    assert outputs_of(again) == outputs_of(seen)
