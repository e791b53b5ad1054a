"""Every ``*_started`` event is closed by its ``*_finished`` however the work ends: answered,
failed, raised out of the run, timed out or cancelled; and what a piece of work started
inside another closes before it does."""

from __future__ import annotations

import asyncio
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from rlm_engine import RLM
from rlm_engine.errors import ChildRunFailed, ProviderError, RLMError, SandboxError
from rlm_engine.events import (
    CellFinished,
    CellStarted,
    DigestFinished,
    DigestStarted,
    Event,
    IterationFinished,
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
from rlm_engine.sandbox.base import CellClock, CellResult, HostHandler, Sandbox
from rlm_engine.sandbox.local import LocalSandbox
from rlm_engine.types import Message

GATE_S = 30.0  # a safety net so a regression fails instead of hanging; not a limit

# What opens a piece of work, what may close it, and the key that matches the two.
PAIRS: dict[type[Any], tuple[tuple[type[Any], ...], Callable[[Any], tuple[object, ...]]]] = {
    RunStarted: ((RunFinished,), lambda e: (e.run_id,)),
    IterationStarted: ((IterationFinished,), lambda e: (e.node_id, e.iteration)),
    ModelCallStarted: ((ModelCallFinished, ModelCallFailed), lambda e: (e.call_id,)),
    SubcallStarted: ((SubcallFinished,), lambda e: (e.call_id,)),
    CellStarted: ((CellFinished,), lambda e: (e.node_id,)),
    DigestStarted: ((DigestFinished,), lambda e: (e.node_id,)),
}
CLOSERS = {closer: opener for opener, (closers, _) in PAIRS.items() for closer in closers}


@dataclass
class _Open:
    event: Event
    order: int


def _inside(node: str, outer: str) -> bool:
    return outer == "" or node == outer or node.startswith(f"{outer}/")


def check_pairs(events: Sequence[Event]) -> list[Event]:
    """Assert every started event is closed once, after it, and after everything started
    inside it; return the closing events in order."""
    open_: dict[tuple[object, ...], _Open] = {}
    closed: list[Event] = []
    for order, event in enumerate(events):
        kind = type(event)
        if kind in PAIRS:
            key = (kind, *PAIRS[kind][1](event))
            assert key not in open_, f"{event.type} opened twice: {key}"
            open_[key] = _Open(event, order)
        elif kind in CLOSERS:
            opener = CLOSERS[kind]
            key = (opener, *PAIRS[opener][1](event))
            started = open_.pop(key, None)
            assert started is not None, f"{event.type} closes nothing open: {key}"
            outer = "" if opener is RunStarted else started.event.node_id
            inner = [
                o.event.type
                for o in open_.values()
                if o.order > started.order and _inside(o.event.node_id, outer)
            ]
            assert not inner, f"{event.type} at {event.node_id!r} before its inner {inner}"
            closed.append(event)
    assert not open_, f"never closed: {[o.event for o in open_.values()]}"
    return closed


def test_every_started_event_type_has_its_closing_pair() -> None:
    members: tuple[type[Any], ...] = typing.get_args(typing.get_args(Event)[0])
    started = {cls for cls in members if cls.model_fields["type"].default.endswith("_started")}
    assert started == set(PAIRS)
    for opener, (closers, _) in PAIRS.items():
        stem = opener.model_fields["type"].default.removesuffix("_started")
        assert {c.model_fields["type"].default for c in closers} <= {
            f"{stem}_finished",
            f"{stem}_failed",
        }


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"


def question_of(messages: Sequence[Message]) -> str:
    return messages[1].content.split("Question: ", 1)[1].split("\n", 1)[0]


def turn(messages: Sequence[Message]) -> int:
    return sum(1 for m in messages if m.role == "assistant")


def scripted(child: list[str], root: list[str]) -> ScriptedModel:
    """A root model for the root ("outer ...") and its children (any other question)."""

    def reply(messages: list[Message]) -> str:
        replies = root if question_of(messages).startswith("outer") else child
        return replies[min(turn(messages), len(replies) - 1)]

    return ScriptedModel(reply)


def make_rlm(root: ScriptedModel, sub: ScriptedModel, events: list[Event], **kw: Any) -> RLM:
    return RLM(root, sub, isolation="none", plugins=[], on_event=events.append, **kw)


def failing(exc: Exception) -> Callable[[list[Message]], str]:
    def reply(messages: list[Message]) -> str:
        raise exc

    return reply


E = TypeVar("E")


def of_type(events: Sequence[Event], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


async def test_a_run_with_every_kind_of_work_closes_each_pair_ok() -> None:
    events: list[Event] = []
    root = scripted(
        child=[fence("FINAL(llm_query('leaf'))")],
        root=[
            fence(
                "a = llm_query_batched(['x', 'y'])\nb = rlm_query('child q')\n"
                "c = double(21)\nprint('z' * 5000)"
            ),
            fence("FINAL(f'{a}|{b}|{c}')"),
        ],
    )

    def double(n: int) -> int:
        return 2 * n

    rlm = make_rlm(
        root,
        ScriptedModel(lambda m: "ok"),
        events,
        max_depth=2,
        tools=[double],
        output_mode="digest",
        max_output_chars=1000,
    )
    async with rlm:
        result = await rlm.arun("outer q")
    assert result.stop_reason == "final"
    assert result.answer == "['ok', 'ok']|ok|42"
    closed = check_pairs(events)
    kinds = {type(e) for e in closed}
    assert kinds == {
        RunFinished,
        IterationFinished,
        ModelCallFinished,
        SubcallFinished,
        CellFinished,
        DigestFinished,
    }
    assert all(e.ok for e in of_type(closed, SubcallFinished))
    assert {e.status for e in of_type(closed, IterationFinished)} == {"ok"}
    assert [e.status for e in of_type(closed, DigestFinished)] == ["ok"]
    assert isinstance(events[-1], RunFinished)


async def test_a_failing_child_closes_its_sub_call_with_child_run_failed() -> None:
    events: list[Event] = []

    def reply(messages: list[Message]) -> str:
        if question_of(messages).startswith("child"):
            raise ProviderError("the child's provider broke", kind="server")
        return [
            fence(
                "try:\n    rlm_query('child q')\n"
                "except RuntimeError as exc:\n    print('caught', exc)"
            ),
            fence("FINAL('went on')"),
        ][min(turn(messages), 1)]

    root = ScriptedModel(reply)
    rlm = make_rlm(root, ScriptedModel(lambda m: "ok"), events, max_depth=2)
    async with rlm:
        result = await rlm.arun("outer q")
    assert result.stop_reason == "final" and result.answer == "went on"
    closed = check_pairs(events)
    (subcall,) = of_type(closed, SubcallFinished)
    assert subcall.kind == "rlm" and not subcall.ok
    assert subcall.error == (
        f"child RLM at {subcall.node_id} stopped (error): ProviderError: the child's provider broke"
    )
    (child_turn,) = [e for e in of_type(closed, IterationFinished) if e.depth == 1]
    assert child_turn.status == "failed" and child_turn.error == "the child's provider broke"
    (failed_call,) = of_type(closed, ModelCallFailed)
    assert failed_call.kind == "server" and failed_call.depth == 1
    # The cell that asked saw the typed error.
    root_turns = [c for c in root.calls if question_of(c).startswith("outer")]
    assert "ChildRunFailed: child RLM at" in root_turns[1][-1].content
    child = next(n for n in result.tree.walk() if n.kind == "rlm")
    assert child.status == "error" and child.detail["stop_reason"] == "error"


def test_child_run_failed_names_the_stop_and_says_what_to_do() -> None:
    exc = ChildRunFailed("error", "ProviderError: down", node_id="r/1/0")
    assert isinstance(exc, RLMError)
    assert str(exc) == "child RLM at r/1/0 stopped (error): ProviderError: down"
    assert (exc.stop_reason, exc.detail, exc.node_id) == ("error", "ProviderError: down", "r/1/0")
    assert "catch the error in the cell" in exc.hint


async def test_a_provider_error_at_the_root_closes_the_call_the_iteration_and_the_run() -> None:
    events: list[Event] = []
    root = ScriptedModel(failing(ProviderError("overloaded", kind="server")))
    async with make_rlm(root, ScriptedModel(lambda m: "ok"), events) as rlm:
        result = await rlm.arun("outer q")
    assert result.stop_reason == "error"
    closed = check_pairs(events)
    assert [type(e) for e in closed] == [ModelCallFailed, IterationFinished, RunFinished]
    call, iteration, run = closed
    assert isinstance(call, ModelCallFailed) and call.kind == "server"
    assert isinstance(iteration, IterationFinished) and iteration.status == "failed"
    assert iteration.error == "overloaded"
    assert isinstance(run, RunFinished) and run.stop_reason == "error"


async def test_an_exception_that_escapes_the_run_still_finishes_it() -> None:
    events: list[Event] = []
    root = ScriptedModel(failing(ValueError("a bug in the model adapter")))
    async with make_rlm(root, ScriptedModel(lambda m: "ok"), events) as rlm:
        with pytest.raises(ValueError, match="a bug in the model adapter"):
            await rlm.arun("outer q")
    closed = check_pairs(events)
    call, iteration, run = closed
    assert isinstance(call, ModelCallFailed) and call.kind is None
    assert call.error == "ValueError: a bug in the model adapter"
    assert isinstance(iteration, IterationFinished) and iteration.status == "failed"
    assert isinstance(run, RunFinished) and run.stop_reason == "error"
    assert run.detail == "ValueError: a bug in the model adapter"
    assert events[-1] is run


async def test_a_failing_digest_closes_the_digest() -> None:
    events: list[Event] = []
    root = ScriptedModel(lambda m: fence("print('z' * 5000)"))
    sub = ScriptedModel(failing(ProviderError("no digest today", kind="rate_limit")))
    rlm = make_rlm(root, sub, events, output_mode="digest", max_output_chars=1000)
    async with rlm:
        result = await rlm.arun("outer q")
    assert result.stop_reason == "error"
    closed = check_pairs(events)
    (digest,) = of_type(closed, DigestFinished)
    assert digest.status == "failed" and digest.error == "no digest today"
    assert digest.output_chars > 1000 and digest.digest_chars == 0
    (cell,) = of_type(closed, CellFinished)
    assert cell.status == "ok"  # the cell itself ran; its output could not be digested
    (call,) = of_type(closed, ModelCallFailed)
    assert call.role == "digest" and call.kind == "rate_limit"


class BrokenHostSandbox(LocalSandbox):
    """A real REPL whose host side fails on the cell that asks for it."""

    async def execute(self, code: str, *, timeout_s: float) -> CellResult:
        self._check(code)
        return await super().execute(code, timeout_s=timeout_s)

    async def execute_at(
        self, code: str, *, clock: float | CellClock, timeout_s: float
    ) -> CellResult:
        self._check(code)
        return await super().execute_at(code, clock=clock, timeout_s=timeout_s)

    def _check(self, code: str) -> None:
        if "BREAK_THE_HOST" in code:
            raise SandboxError("the sandbox lost its worker")


async def test_a_cell_whose_sandbox_fails_is_closed_as_failed(tmp_path: Path) -> None:
    events: list[Event] = []

    def factory(handler: HostHandler, reserved_tools: tuple[str, ...]) -> Sandbox:
        return BrokenHostSandbox(
            handler, tools=reserved_tools, isolation="none", workdir_parent=tmp_path
        )

    root = ScriptedModel(lambda m: fence("BREAK_THE_HOST = 1"))
    rlm = RLM(root, sandbox_factory=factory, plugins=[], on_event=events.append)
    result = await rlm.arun("outer q")
    assert result.stop_reason == "error"
    closed = check_pairs(events)
    (cell,) = of_type(closed, CellFinished)
    assert cell.status == "failed" and cell.error == "the sandbox lost its worker"
    assert cell.output == "" and cell.output_chars == 0
    cell_node = next(n for n in result.tree.walk() if n.kind == "cell")
    assert cell_node.status == "error"


def blocking_sub(entered: asyncio.Event) -> ScriptedModel:
    """A sub-model whose calls never return: they wait until cancelled."""

    async def reply(messages: list[Message]) -> str:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("a blocked call returned")

    return ScriptedModel(reply)


async def test_a_timed_out_cell_closes_its_sub_calls_before_itself() -> None:
    events: list[Event] = []
    entered = asyncio.Event()
    root = ScriptedModel(
        lambda m: [fence("llm_query('never answered')"), fence("FINAL('after')")][min(turn(m), 1)]
    )
    async with make_rlm(root, blocking_sub(entered), events, cell_timeout_s=1.0) as rlm:
        result = await rlm.arun("outer q")
    assert result.answer == "after"
    closed = check_pairs(events)  # includes: the sub-call closed before its cell
    cell = of_type(closed, CellFinished)[0]
    assert cell.status == "timeout"
    (subcall,) = of_type(closed, SubcallFinished)
    assert not subcall.ok and (subcall.error or "").startswith("cancelled")
    (call,) = of_type(closed, ModelCallFailed)
    assert call.kind is None and call.error.startswith("cancelled")


CANCELLED_WORK = {
    # What the cell asks for, and the sub-calls and cells left open when the run is cancelled.
    "llm": (fence("llm_query('never answered')"), 1, 1),
    "rlm": (fence("rlm_query('child q')"), 2, 2),
}


@pytest.mark.parametrize("work", sorted(CANCELLED_WORK))
async def test_a_cancelled_run_closes_every_started_event_then_is_cancelled(work: str) -> None:
    code, subcalls, cells = CANCELLED_WORK[work]
    events: list[Event] = []
    entered = asyncio.Event()
    root = scripted(child=[fence("llm_query('never answered')")], root=[code])
    rlm = make_rlm(root, blocking_sub(entered), events, max_depth=2)
    async with rlm:
        task = asyncio.create_task(rlm.arun("outer q"))
        await asyncio.wait_for(entered.wait(), GATE_S)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    closed = check_pairs(events)
    run = closed[-1]
    assert isinstance(run, RunFinished) and run.stop_reason == "cancelled"
    assert events[-1] is run
    failed_subcalls = of_type(closed, SubcallFinished)
    assert len(failed_subcalls) == subcalls
    assert all(not e.ok and (e.error or "").startswith("cancelled") for e in failed_subcalls)
    failed_cells = of_type(closed, CellFinished)
    assert len(failed_cells) == cells
    assert {(e.status, e.error) for e in failed_cells} == {("failed", "cancelled")}
    assert {e.status for e in of_type(closed, IterationFinished) if e.iteration == 1} == {"failed"}
    (blocked,) = of_type(closed, ModelCallFailed)
    assert blocked.role == "sub" and blocked.kind is None
