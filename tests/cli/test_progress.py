"""The live line's counters: queued vs in flight, unknown cost, the root model awaited."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pytest

from rlm_engine import RLM
from rlm_engine.cli.progress import Counters, Progress, elapsed
from rlm_engine.engine.journal import MemoryJournal
from rlm_engine.events import (
    CellFinished,
    CellStarted,
    Event,
    IterationStarted,
    ModelCallFailed,
    ModelCallFinished,
    ModelCallStarted,
    RunFinished,
    RunStarted,
    SubcallFinished,
    SubcallStarted,
)
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.types import Completion, Message

RUN = "run1"
Role = Literal["root", "sub"]
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def queued(node: str) -> SubcallStarted:
    return SubcallStarted(run_id=RUN, node_id=node, call_id="c", kind="llm", prompt_chars=1)


def at_provider(node: str, role: Role = "sub", depth: int = 1) -> ModelCallStarted:
    return ModelCallStarted(
        run_id=RUN, node_id=node, depth=depth, role=role, model="m", call_id="c", prompt_chars=1
    )


def replied(
    node: str, cost: float | None = None, role: Role = "sub", depth: int = 1
) -> ModelCallFinished:
    return ModelCallFinished(
        run_id=RUN,
        node_id=node,
        depth=depth,
        role=role,
        model="m",
        call_id="c",
        input_tokens=10,
        output_tokens=5,
        cached_tokens=0,
        cost_usd=cost,
        latency_s=0.1,
        response_chars=3,
    )


def ended(node: str, ok: bool = True) -> SubcallFinished:
    return SubcallFinished(run_id=RUN, node_id=node, call_id="c", kind="llm", ok=ok, result_chars=1)


def fed(*events: Event) -> Counters:
    counters = Counters()
    for event in events:
        counters.update(event)
    return counters


def test_a_sub_call_is_queued_until_it_holds_a_slot_then_in_flight_then_done() -> None:
    nodes = [f"r/2/{i}" for i in range(6)]
    counters = fed(*map(queued, nodes), at_provider(nodes[0]), at_provider(nodes[1]))
    assert "sub-calls 2 in flight, 4 queued, 0 done |" in counters.line(0)
    counters.update(replied(nodes[0]))
    assert "sub-calls 1 in flight, 4 queued, 0 done |" in counters.line(0)
    counters.update(ended(nodes[0]))
    counters.update(
        ModelCallFailed(
            run_id=RUN,
            node_id=nodes[1],
            depth=1,
            role="sub",
            model="m",
            call_id="c",
            error="e",
            kind="server",
        )
    )
    counters.update(ended(nodes[1], ok=False))
    line = counters.line(0)
    assert "sub-calls 0 in flight, 4 queued, 1 done, 1 failed |" in line
    assert "tokens 15 |" in line


def test_a_finished_cell_takes_its_unfinished_sub_calls_with_it() -> None:
    counters = fed(
        CellStarted(run_id=RUN, node_id="r/2", iteration=1, cell_index=0, code=""),
        *map(queued, ["r/2/0", "r/2/1", "r/3/0"]),
        at_provider("r/2/0"),
    )
    assert counters.state() == "running cell 1.1"
    counters.update(
        CellFinished(
            run_id=RUN,
            node_id="r/2",
            iteration=1,
            cell_index=0,
            status="timeout",
            output="",
            output_chars=0,
            duration_s=1.0,
        )
    )
    assert (counters.in_flight, counters.queued) == (set(), {"r/3/0"})
    assert counters.cells_running == 0 and counters.cell == ""


@pytest.mark.parametrize(
    ("costs", "shown"),
    [
        ((), "cost $0.0000"),
        ((0.01, 0.002), "cost $0.0120"),
        ((None, None), "cost unknown"),
        ((0.01, None, 0.002, None, None), "cost ≥$0.0120 (+3 unpriced)"),
    ],
)
def test_an_unknown_cost_is_never_shown_as_zero(
    costs: tuple[float | None, ...], shown: str
) -> None:
    counters = fed(*(replied(f"r/2/{i}", cost) for i, cost in enumerate(costs)))
    assert counters.line(0).endswith(f"| {shown}")


def test_the_root_model_is_awaited_only_while_the_depth_0_root_generates() -> None:
    counters = fed(
        RunStarted(run_id=RUN, question="q", model="m", sub_model="s"),
        IterationStarted(run_id=RUN, iteration=2),
        at_provider("r/0", role="root", depth=0),
    )
    line = counters.line(75)
    assert line.startswith(
        f"run {RUN} | elapsed 1m15s | iteration 2 | waiting for the root model |"
    )
    counters.update(at_provider("r/2/0/0", role="root", depth=1))  # a child RLM's root
    counters.update(replied("r/2/0/0", role="root", depth=1))
    assert counters.root_waiting
    counters.update(replied("r/0", role="root", depth=0))
    assert counters.state() == "working"
    counters.update(
        RunFinished(
            run_id=RUN,
            stop_reason="final",
            iterations=2,
            input_tokens=1,
            output_tokens=1,
            cost_usd=None,
            duration_s=1.0,
        )
    )
    assert "| finished: final |" in counters.line(1)
    assert "| finished: final | sub-calls 0 done | tokens 30 |" in counters.final_line(1)


def test_elapsed_time_is_in_whole_units() -> None:
    assert [elapsed(s) for s in (0.4, 59.9, 60, 3599, 7500)] == [
        "0s",
        "59s",
        "1m00s",
        "59m59s",
        "2h05m",
    ]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_last_line_stays_with_the_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    screen = Tty()
    with Progress(screen) as progress:
        progress(RunStarted(run_id=RUN, question="q", model="m", sub_model="s"))
        progress(queued("r/2/0"))
    last = ANSI.sub("", screen.getvalue()).strip().splitlines()[-1]
    assert last.startswith(
        f"run {RUN} | elapsed 0s | iteration 0 | stopped | sub-calls 0 done, 1 unfinished |"
    )


def test_plain_output_names_the_run_and_says_it_was_interrupted() -> None:
    log = io.StringIO()
    with pytest.raises(KeyboardInterrupt), Progress(log) as progress:
        progress(RunStarted(run_id=RUN, question="q", model="m", sub_model="s"))
        progress(IterationStarted(run_id=RUN, iteration=1))
        raise KeyboardInterrupt
    lines = log.getvalue().splitlines()
    assert lines[:2] == [f"run {RUN} started", "iteration 1"]
    assert "| interrupted |" in lines[-1] and len(lines) == 3


@dataclass
class SlowJournal(MemoryJournal):
    """Journaling a reply takes a while, as with a real store under load."""

    async def record_call(
        self,
        node_id: str,
        role: str,
        request_hash: str,
        completion: Completion,
        request: str | None = None,
    ) -> None:
        await asyncio.sleep(0.005)
        await super().record_call(node_id, role, request_hash, completion, request)


async def test_in_flight_never_exceeds_the_concurrency_limit_of_a_real_fan_out() -> None:
    limit, calls = 4, 32
    counters = Counters()
    peak = 0

    def watch(event: Event) -> None:
        nonlocal peak
        counters.update(event)
        peak = max(peak, len(counters.in_flight))

    async def slow_sub(messages: Sequence[Message]) -> str:
        await asyncio.sleep(0.01)
        return "x"

    batch = f"```repl\nout = llm_query_batched(['q'] * {calls})\n```"
    turns = [batch, "```repl\nFINAL(len(out))\n```"]
    root = ScriptedModel(lambda m: turns[min(sum(x.role == "assistant" for x in m), 1)])
    rlm = RLM(root, ScriptedModel(slow_sub), max_concurrency=limit, on_event=watch)
    try:
        result = await rlm.arun("q", journal=SlowJournal())
    finally:
        await rlm.aclose()
    assert result.answer == str(calls)
    assert peak == limit
    assert (counters.subcalls_done, counters.in_flight, counters.queued) == (calls, set(), set())
