"""End-to-end runs: scripted models, the real REPL worker, the real broker."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import BaseModel

from rlm_engine import RLM
from rlm_engine.events import CellFinished, RunFinished, RunStarted, SandboxRestarted
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.types import Message


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"


def turn(messages: Sequence[Message]) -> int:
    """0 for the first root reply, 1 for the second, ..."""
    return sum(1 for m in messages if m.role == "assistant")


def question_of(messages: Sequence[Message]) -> str:
    first = messages[1].content
    return first.split("Question: ", 1)[1].split("\n", 1)[0]


def root_from(turns: list[str]) -> ScriptedModel:
    return ScriptedModel(lambda messages: turns[min(turn(messages), len(turns) - 1)])


@pytest.fixture
def haystack(tmp_path: Path) -> tuple[Path, str]:
    rng = random.Random(7)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    lines = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(140_000)]
    needle = "3141592"
    lines[97_331] = f"One of the special magic numbers for quiet-harbor is: {needle}."
    path = tmp_path / "big.txt"
    path.write_text("\n".join(lines))
    assert path.stat().st_size > 10_000_000
    return path, needle


def needle_sub(messages: Sequence[Message]) -> str:
    prompt = messages[-1].content
    for line in prompt.splitlines():
        if "special magic number" in line:
            return line.rsplit(" ", 1)[-1].rstrip(".")
    return "NONE"


NEEDLE_TURNS = [
    fence("print(type(context).__name__, len(context))\nprint(context[:200])"),
    fence(
        "lines = context.splitlines()\n"
        "chunks = ['\\n'.join(lines[i:i + 10000]) for i in range(0, len(lines), 10000)]\n"
        "answers = llm_query_batched(['Find the magic number.\\n' + c for c in chunks])\n"
        "found = [a for a in answers if a != 'NONE']\n"
        "print(len(chunks), found)"
    ),
    "The sub-calls found it.\nFINAL_VAR(found)",
]


def test_needle_in_a_10mb_context(haystack: tuple[Path, str]) -> None:
    path, needle = haystack
    root = root_from(NEEDLE_TURNS[:2] + [fence("FINAL(found[0])")])
    sub = ScriptedModel(needle_sub)
    with RLM(root, sub) as rlm:
        result = rlm.run("What is the special magic number for quiet-harbor?", path)
    assert result.stop_reason == "final"
    assert result.answer == needle
    assert result.sub_calls == 14
    # The root never carries the context: every root request stays small.
    biggest = max(sum(len(m.content) for m in call) for call in root.calls)
    assert biggest < 20_000
    assert result.iterations == 3


def test_final_var_in_plain_text(haystack: tuple[Path, str]) -> None:
    path, needle = haystack
    with RLM(root_from(NEEDLE_TURNS), ScriptedModel(needle_sub)) as rlm:
        result = rlm.run("What is the special magic number for quiet-harbor?", path)
    assert result.stop_reason == "final"
    assert result.answer == f"['{needle}']"


def test_batched_sub_calls_run_concurrently_within_the_bound() -> None:
    in_flight = 0
    peak = 0

    async def slow_sub(messages: Sequence[Message]) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return messages[-1].content.upper()

    root = root_from(
        [
            fence("out = llm_query_batched([f'item {i}' for i in range(64)])\nprint(out[:2])"),
            fence("FINAL(len(out))"),
        ]
    )
    with RLM(root, ScriptedModel(slow_sub), max_concurrency=8) as rlm:
        result = rlm.run("uppercase things")
    assert result.answer == "64"
    assert result.sub_calls == 64
    assert peak == 8
    cell = result.tree.children[1]
    assert cell.kind == "cell" and len([c for c in cell.children if c.kind == "llm"]) == 64


def test_depth_two_recursion_gives_the_child_its_own_repl() -> None:
    def root_policy(messages: Sequence[Message]) -> str:
        question = question_of(messages)
        if question.startswith("Count the vowels"):
            # The child: its own REPL, its own context, a plain sub-call at the limit.
            return [
                fence("secret_child = 1\nn = sum(ch in 'aeiou' for ch in context)\nprint(n)"),
                fence("r = rlm_query('say ok')\nFINAL(f'{n}:{r}')"),
            ][min(turn(messages), 1)]
        return [
            fence("x = rlm_query('Count the vowels', context='banana split')\nprint(x)"),
            fence("print('secret_child' in globals())"),
            "FINAL(" + "done" + ")",
        ][min(turn(messages), 2)]

    root = ScriptedModel(root_policy)
    sub = ScriptedModel(lambda m: "ok")
    with RLM(root, sub, max_depth=2) as rlm:
        result = rlm.run("Outer question")
    assert result.stop_reason == "final"
    outputs = [m.content for call in root.calls for m in call if m.role == "user"]
    assert any("4:ok" in o for o in outputs)
    assert any("[cell 1 output]\nFalse" in o for o in outputs)
    rlm_nodes = [n for n in result.tree.walk() if n.kind == "rlm"]
    assert len(rlm_nodes) == 1
    child_llm = [n for n in rlm_nodes[0].walk() if n.kind == "llm"]
    assert len(child_llm) == 1  # at max depth, rlm_query became a plain call


def test_rlm_query_at_depth_limit_is_a_plain_call() -> None:
    sub = ScriptedModel(lambda m: f"len={len(m[-1].content)}")
    root = root_from([fence("print(rlm_query('q', context='abc'))"), "FINAL(ok)"])
    with RLM(root, sub) as rlm:
        result = rlm.run("question")
    assert not [n for n in result.tree.walk() if n.kind == "rlm"]
    assert "Context:\nabc" in sub.calls[0][-1].content


class Verdict(BaseModel):
    count: int
    label: str


def test_submit_is_validated_and_a_bad_submit_goes_back_to_the_root() -> None:
    root = root_from(
        [
            fence("print(len(context))"),
            fence("SUBMIT(count='many', label='spam')"),
            fence("SUBMIT(count=3, label='spam')"),
        ]
    )
    with RLM(root, output_schema=Verdict) as rlm:
        result = rlm.run("How many spam lines?", "spam\nham\nspam\nspam")
    assert result.stop_reason == "submitted"
    assert result.fields == {"count": 3, "label": "spam"}
    assert result.iterations == 3
    rejected = root.calls[2][-1].content
    assert "SUBMIT was rejected" in rejected and "count" in rejected


def test_stagnation_nudges_once_then_stops() -> None:
    root = ScriptedModel(lambda m: fence("print(undefined_name)"))
    with RLM(root, max_iterations=10) as rlm:
        result = rlm.run("question")
    assert result.stop_reason == "stagnation"
    assert result.iterations == 4
    assert "repeated the same step three times" in root.calls[3][-1].content


def test_a_runaway_cell_times_out_and_the_run_goes_on() -> None:
    root = root_from(
        [
            fence("kept = 41\nwhile True:\n    pass"),
            fence("FINAL(kept + 1)"),
        ]
    )
    events: list[object] = []
    with RLM(root, cell_timeout_s=1.0, on_event=events.append) as rlm:
        result = rlm.run("question")
    assert result.answer == "42"
    feedback = root.calls[1][-1].content
    assert "TimeoutError" in feedback and "Variables are kept" in feedback
    finished = [e for e in events if isinstance(e, CellFinished)]
    assert finished[0].status == "timeout"
    assert finished[0].duration_s < 2.0


def test_a_killed_repl_is_restarted_and_its_variables_restored_by_replay() -> None:
    stubborn = (
        "kept = 1\nimport time\nwhile True:\n    try:\n        time.sleep(10)\n"
        "    except KeyboardInterrupt:\n        pass"
    )
    root = root_from(
        [
            fence("import random\nearlier = llm_query('five?')\nnoise = random.random()"),
            fence(stubborn),
            fence("print('kept' in globals(), earlier, len(context))"),
            "FINAL(restarted)",
        ]
    )
    sub = ScriptedModel(lambda m: "5")
    events: list[object] = []
    with RLM(root, sub, cell_timeout_s=1.0, on_event=events.append) as rlm:
        result = rlm.run("question", "abcdef")
    assert result.answer == "restarted"
    assert any(isinstance(e, SandboxRestarted) for e in events)
    feedback = root.calls[2][-1].content
    assert "restored by replaying the 1 earlier cell" in feedback
    assert len(sub.calls) == 1  # the replayed cell's sub-call came from the journal
    assert "[cell 1 output]\nFalse 5 6" in root.calls[3][-1].content


def test_a_repl_killed_in_its_first_cell_restarts_empty() -> None:
    stubborn = (
        "import time\nwhile True:\n    try:\n        time.sleep(10)\n"
        "    except BaseException:\n        pass"
    )
    root = root_from([fence(stubborn), fence("print(len(context))"), "FINAL(ok)"])
    with RLM(root, cell_timeout_s=1.0) as rlm:
        result = rlm.run("question", "abcdef")
    assert result.answer == "ok"
    assert "Nothing had run before it" in root.calls[1][-1].content
    assert "[cell 1 output]\n6" in root.calls[2][-1].content


def test_max_iterations_ends_with_one_forced_final_turn() -> None:
    def policy(messages: Sequence[Message]) -> str:
        if "You have used every iteration" in messages[-1].content:
            return "FINAL(best guess)"
        return fence(f"print({turn(messages)})")

    root = ScriptedModel(policy)
    with RLM(root, max_iterations=3) as rlm:
        result = rlm.run("question")
    assert result.stop_reason == "max_iterations"
    assert result.answer == "best guess"
    assert len(root.calls) == 4


def test_first_turn_guard_rejects_an_answer_before_looking() -> None:
    root = root_from(["FINAL(guess)", fence("print(context)"), "FINAL(seen)"])
    with RLM(root) as rlm:
        result = rlm.run("question", "the context")
    assert result.answer == "seen"
    assert "You have not looked at the context yet" in root.calls[1][-1].content


def test_a_batch_larger_than_the_sub_calls_left_is_refused_whole() -> None:
    root = root_from(
        [fence("out = llm_query_batched(['a', 'b', 'c', 'd'])\nprint(out)"), "FINAL(x)"]
    )
    sub = ScriptedModel(lambda m: "fine")
    with RLM(root, sub, max_sub_calls=2) as rlm:
        result = rlm.run("question")
    feedback = root.calls[1][-1].content
    assert "BudgetExceeded" in feedback and "only 2 of the run's 2 are left" in feedback
    assert "'fine'" not in feedback
    assert sub.calls == [] and result.sub_calls == 0


def test_token_budget_stops_the_run() -> None:
    root = ScriptedModel(lambda m: fence(f"print('x' * {turn(m) + 1})"))
    with RLM(root, max_tokens=3_000) as rlm:
        result = rlm.run("question")
    assert result.stop_reason == "budget"
    assert result.stop_detail.startswith("tokens")


@pytest.mark.asyncio
async def test_stream_yields_typed_events_in_order() -> None:
    root = root_from([fence("print(1 + 1)"), "FINAL(2)"])
    rlm = RLM(root)
    stream = rlm.stream("question")
    events = [event async for event in stream]
    await rlm.aclose()
    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-1], RunFinished)
    assert stream.result is not None and stream.result.answer == "2"
    types = [e.type for e in events]
    assert types.index("cell_started") < types.index("cell_finished") < types.index("final")
    assert len({e.run_id for e in events}) == 1


def test_persistent_session_keeps_variables_and_history() -> None:
    def policy(messages: Sequence[Message]) -> str:
        if "New question" in messages[-1].content:
            return fence("FINAL(total * 2)")
        return [fence("total = 21"), "FINAL(set)"][min(turn(messages), 1)]

    root = ScriptedModel(policy)
    with RLM(root, persistent=True) as rlm:
        first = rlm.run("remember 21")
        second = rlm.run("double it")
    assert first.answer == "set"
    assert second.answer == "42"
    assert any(
        m.content.startswith("Question: remember 21") or "remember 21" in m.content
        for m in root.calls[-1]
    )


def test_digest_mode_hands_long_output_to_an_ephemeral_agent() -> None:
    root = root_from(
        [
            fence("'''report how many lines there are'''\nprint('\\n'.join(['row'] * 20000))"),
            "FINAL(ok)",
        ]
    )
    sub = ScriptedModel(lambda m: "20000 rows of 'row'")
    with RLM(root, sub, output_mode="digest", max_output_chars=1000) as rlm:
        result = rlm.run("question")
    feedback = root.calls[1][-1].content
    assert "20000 rows of 'row'" in feedback and "[digest of a" in feedback
    assert feedback.count("row") < 10
    assert "Instruction: report how many lines there are" in sub.calls[0][-1].content
    assert [n.kind for n in result.tree.children].count("digest") == 1


def test_host_tools_and_memory_are_reachable_from_the_repl() -> None:
    seen: list[int] = []

    def lookup(user_id: int) -> dict[str, object]:
        seen.append(user_id)
        return {"id": user_id, "name": f"user{user_id}"}

    root = root_from(
        [
            fence("r = lookup(7)\nmemory['last'] = r['name']\nprint(r, memory['last'])"),
            "FINAL(ok)",
        ]
    )
    with RLM(root, tools=[lookup]) as rlm:
        rlm.run("question")
        assert rlm.memory == {"last": "user7"}
    assert seen == [7]
    assert "{'id': 7, 'name': 'user7'} user7" in root.calls[1][-1].content


def test_history_capsule_compacts_old_turns() -> None:
    root_turns = 0

    def policy(messages: Sequence[Message]) -> str:
        nonlocal root_turns
        if messages[0].content.startswith("Summarise the earlier turns"):
            return "SUMMARY: printed many blocks"
        root_turns += 1
        return "FINAL(done)" if root_turns > 8 else fence(f"print('z' * 3000, {root_turns})")

    root = ScriptedModel(policy)
    with RLM(root, root_context_tokens=4_000, capsule_share=0.5) as rlm:
        result = rlm.run("question")
    assert result.answer == "done"
    assert any(n.kind == "capsule" for n in result.tree.children)
    last_root = root.calls[-1]
    assert "[Summary of earlier turns]\nSUMMARY: printed many blocks" in last_root[1].content
    assert len(last_root) < 12
