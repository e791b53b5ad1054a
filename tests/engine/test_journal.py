"""Journaled runs: offline replay, resume after a crash, and divergence detection."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from rlm_engine import RLM
from rlm_engine.engine.journal import MemoryJournal, RecordedCell
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
