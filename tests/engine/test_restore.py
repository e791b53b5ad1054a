"""Restoring a persistent RLM's REPL from recorded cells (`RLM.arestore`)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from rlm_engine import RLM
from rlm_engine.engine.journal import output_hash
from rlm_engine.engine.restore import PastCell, PastRun, SessionRestoreError
from rlm_engine.events import Event, SubcallStarted
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.plugins.base import Block, CellDecision, CellInfo, Plugin
from rlm_engine.sandbox.base import CellResult
from rlm_engine.types import Message


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"


def first_prompt(model: ScriptedModel) -> str:
    return "\n".join(m.content for m in model.calls[0])


def never(messages: Sequence[Message]) -> str:
    raise AssertionError("no model may be called while a session is restored")


def past(cells: list[PastCell], replies: dict[str, str] | None = None) -> PastRun:
    return PastRun(
        run_id="earlier",
        question="how much is there?",
        answer="21",
        context=None,
        cells=cells,
        replies=replies or {},
    )


async def test_restored_cells_rebuild_the_variables_without_calling_a_model() -> None:
    root = ScriptedModel(lambda m: fence("FINAL(f'{total} {half} {llm_query(\"now?\")}')"))
    sub = ScriptedModel(lambda m: "live", name="scripted/new-sub")
    run = past(
        [
            PastCell("r/1", 1, 0, "total = 20\nhalf = llm_query('half of twenty?')"),
            PastCell("r/3", 2, 0, "total += 1"),
        ],
        {"r/1/0": "ten"},
    )
    events: list[Event] = []
    async with RLM(root, sub, persistent=True, on_event=events.append) as rlm:
        report = await rlm.arestore([run])
        assert root.calls == [] and sub.calls == []
        result = await rlm.arun("and now?", run_id="next")
    assert (report.runs, report.cells, report.warnings) == (1, 2, [])
    assert report.variables.keys() >= {"total", "half"}
    assert result.answer == "21 ten live"
    # The later question's sub-call is its own run's, with its own sub-model.
    assert len(sub.calls) == 1
    assert [e.run_id for e in events if isinstance(e, SubcallStarted)] == ["next"]
    prompt = first_prompt(root)
    assert "how much is there?" in prompt and "answered: 21" in prompt and "total (int)" in prompt


async def test_a_sub_call_the_journal_lacks_fails_in_its_cell_and_is_reported() -> None:
    root = ScriptedModel(lambda m: fence("FINAL(str(got))"))
    recorded = output_hash(CellResult(status="ok", output=""))
    run = past(
        [
            PastCell(
                "r/1",
                1,
                0,
                "try:\n    got = llm_query('q')\nexcept Exception as exc:\n    got = 'missing'\n",
                output_hash=recorded,
            ),
            PastCell("r/3", 2, 0, "print(got)", output_hash=recorded),
        ]
    )
    async with RLM(root, ScriptedModel(never), persistent=True) as rlm:
        report = await rlm.arestore([run])
        result = await rlm.arun("what did it get?")
    assert result.answer == "missing"
    [warning] = report.warnings
    text = str(warning)
    assert "run earlier" in text and "cell 2.1 (r/3)" in text and "differs" in text


async def test_a_missing_reply_is_named_in_the_warning_of_the_cell_that_changed() -> None:
    run = past([PastCell("r/1", 1, 0, "x = llm_query('q')", output_hash="recorded elsewhere")])
    async with RLM(ScriptedModel(never), persistent=True) as rlm:
        report = await rlm.arestore([run])
    [warning] = report.warnings
    assert "cell 1.1 (r/1)" in str(warning) and "no reply for r/1/0" in str(warning)


async def test_batched_sub_calls_get_their_replies_in_prompt_order() -> None:
    code = "a, b, c = llm_query_batched(['p', 'q', 'r'])\nprint(a, b)"
    run = past([PastCell("r/1", 1, 0, code)], {"r/1/0": "A", "r/1/1": "B"})
    root = ScriptedModel(lambda m: fence("FINAL(a + b + ('!' if c.startswith('[error') else ''))"))
    async with RLM(root, ScriptedModel(never), persistent=True) as rlm:
        await rlm.arestore([run])
        result = await rlm.arun("which?")
    assert result.answer == "AB!"


async def test_memory_reads_the_store_and_restored_writes_are_not_applied_again() -> None:
    memory: dict[str, object] = {"n": 5}
    run = past([PastCell("r/1", 1, 0, "seen = memory['n']\nmemory['n'] = seen + 1")])
    root = ScriptedModel(lambda m: fence("FINAL(str(seen))"))
    async with RLM(root, persistent=True, memory=memory) as rlm:
        await rlm.arestore([run])
        result = await rlm.arun("seen?")
    assert result.answer == "5" and memory == {"n": 5}


class RefuseDeletes(Plugin):
    name = "refuse-deletes"

    async def before_cell(self, cell: CellInfo) -> CellDecision | None:
        return Block(reason="no deleting") if "del " in cell.code else None


async def test_killed_cells_are_skipped_and_blocked_cells_are_not_run() -> None:
    run = past(
        [
            PastCell("r/1", 1, 0, "x = 1"),
            PastCell("r/3", 2, 0, "while True: pass", status="killed"),
            PastCell("r/5", 3, 0, "del x"),
        ]
    )
    root = ScriptedModel(lambda m: fence("FINAL(str(x))"))
    async with RLM(root, persistent=True, plugins=[RefuseDeletes()]) as rlm:
        report = await rlm.arestore([run])
        result = await rlm.arun("x?")
    assert result.answer == "1"
    assert (report.cells, report.skipped) == (1, 2)
    [warning] = report.warnings
    assert "cell 3.1 (r/5) was not run: no deleting" in str(warning)


async def test_a_session_is_restored_only_into_an_rlm_that_has_not_run() -> None:
    root = ScriptedModel(lambda m: "FINAL(done)")
    async with RLM(root, persistent=True) as rlm:
        await rlm.arun("first")
        with pytest.raises(SessionRestoreError, match="has not run a question yet"):
            await rlm.arestore([past([PastCell("r/1", 1, 0, "x = 1")])])


async def test_a_persistent_rlm_serves_each_question_with_its_own_broker() -> None:
    def policy(messages: Sequence[Message]) -> str:
        return fence("FINAL(llm_query('hi'))")

    events: list[Event] = []
    async with RLM(
        ScriptedModel(policy),
        ScriptedModel(lambda m: "yo"),
        persistent=True,
        on_event=events.append,
    ) as rlm:
        await rlm.arun("one", run_id="one")
        await rlm.arun("two", run_id="two")
    assert [e.run_id for e in events if isinstance(e, SubcallStarted)] == ["one", "two"]
