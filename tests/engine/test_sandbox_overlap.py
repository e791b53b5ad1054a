"""The sandbox starts while the first root call is in flight; the first prompt describes
the context exactly as the started sandbox does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from rlm_engine import RLM
from rlm_engine.events import ContextLoaded, Event, ModelCallStarted
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.sandbox.base import CellResult, ContextMeta, ContextValue, HostHandler, Sandbox
from rlm_engine.sandbox.local import LocalSandbox
from rlm_engine.types import Message

GATE_S = 10.0  # a safety net so a regression fails instead of hanging; not a limit


class GatedSandbox(LocalSandbox):
    """A real REPL whose start waits until the root model has been called."""

    def __init__(self, handler: HostHandler, gate: asyncio.Event, log: list[str], **kw: Any):
        super().__init__(handler, isolation="none", **kw)
        self._gate = gate
        self._log = log

    async def start(self) -> None:
        self._log.append("sandbox start")
        try:
            await asyncio.wait_for(self._gate.wait(), GATE_S)
            self._log.append("released by the model call")
        except TimeoutError:
            self._log.append("not released")
        await super().start()
        self._log.append("sandbox ready")


def _root(gate: asyncio.Event, log: list[str], replies: list[str]) -> ScriptedModel:
    def reply(messages: Sequence[Message]) -> str:
        turn = sum(1 for m in messages if m.role == "assistant")
        log.append(f"model call {turn}")
        gate.set()
        return replies[min(turn, len(replies) - 1)]

    return ScriptedModel(reply)


async def test_the_first_root_call_goes_out_before_the_sandbox_is_ready(tmp_path: Path) -> None:
    gate, log = asyncio.Event(), list[str]()
    events: list[Event] = []
    replies = ["```repl\nprint(len(context))\n```", "```repl\nFINAL('done')\n```"]

    def factory(handler: HostHandler, reserved_tools: tuple[str, ...]) -> Sandbox:
        return GatedSandbox(handler, gate, log, tools=reserved_tools, workdir_parent=tmp_path)

    root = _root(gate, log, replies)
    rlm = RLM(root, sandbox_factory=factory, on_event=events.append)
    result = await rlm.arun("How long is it?", "x" * 42)
    assert result.stop_reason == "final" and result.answer == "done"
    assert log[:4] == [
        "sandbox start",
        "model call 0",
        "released by the model call",
        "sandbox ready",
    ]
    kinds = [type(e) for e in events if isinstance(e, ModelCallStarted | ContextLoaded)]
    assert kinds[:2] == [ModelCallStarted, ContextLoaded]
    assert "Total characters: 42" in root.calls[0][1].content
    assert "42" in root.calls[1][-1].content  # the cell ran in the sandbox started meanwhile


async def test_a_missing_context_fails_the_run_and_stops_the_starting_sandbox(
    tmp_path: Path,
) -> None:
    gate, log = asyncio.Event(), list[str]()

    def factory(handler: HostHandler, reserved_tools: tuple[str, ...]) -> Sandbox:
        return GatedSandbox(handler, gate, log, tools=reserved_tools, workdir_parent=tmp_path)

    root = _root(gate, log, ["```repl\nFINAL('x')\n```"])
    rlm = RLM(root, sandbox_factory=factory)
    result = await rlm.arun("q", tmp_path / "missing.txt")
    assert result.stop_reason == "error" and "does not exist" in result.stop_detail
    assert root.calls == []  # no model call for a context that cannot load
    assert "sandbox ready" not in log  # the start was stopped, nothing left running
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


def _contexts(tmp_path: Path) -> list[ContextValue]:
    text = tmp_path / "notes.txt"
    text.write_text("line one\nline two é\n" * 50)
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"a": [1, 2], "b": "c"}))
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# A\n")
    (folder / "sub" / "b.txt").write_text("bee " * 300)
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref")
    return [
        None,
        "a short string context",
        text,
        data,
        folder,
        ["first", "second " * 90],
        [text, "inline text"],
        {"k": "v", "n": 3},
    ]


@pytest.mark.parametrize("lazy", [0, 64])
async def test_the_host_describes_every_context_as_the_worker_does(
    tmp_path: Path, lazy: int
) -> None:
    async def handler(method: str, params: Any) -> Any:
        return None

    for value in _contexts(tmp_path):
        box = LocalSandbox(
            handler, isolation="none", workdir_parent=tmp_path, lazy_context_bytes=lazy
        )
        described = box.describe_context(value)
        async with box:
            loaded = await box.load_context(value)
        assert isinstance(described, ContextMeta)
        assert described == loaded, value


class CountingSandbox(LocalSandbox):
    """A real REPL that counts the commands the engine sends it."""

    commands: list[str] = []

    async def execute(self, code: str, *, timeout_s: float) -> CellResult:
        self.commands.append("execute")
        return await super().execute(code, timeout_s=timeout_s)

    async def execute_at(self, code: str, *, clock: float, timeout_s: float) -> CellResult:
        self.commands.append("execute_at")
        return await super().execute_at(code, clock=clock, timeout_s=timeout_s)


async def test_a_journaled_cell_is_one_command_with_its_clock(tmp_path: Path) -> None:
    CountingSandbox.commands = []

    def factory(handler: HostHandler, reserved_tools: tuple[str, ...]) -> Sandbox:
        return CountingSandbox(
            handler, isolation="none", tools=reserved_tools, workdir_parent=tmp_path
        )

    replies = [
        "```repl\nimport time\nt = time.time()\nprint(t)\n```",
        "```repl\nprint(time.time() - t)\n```",
        "```repl\nFINAL('done')\n```",
    ]
    root = ScriptedModel(replies)
    result = await RLM(root, sandbox_factory=factory).arun("q", "ctx")
    assert result.stop_reason == "final"
    # One setup command seeds `random`; then one command per cell, clock included.
    assert CountingSandbox.commands == ["execute", "execute_at", "execute_at", "execute_at"]


async def test_execute_at_starts_the_repl_clock_with_the_cell(tmp_path: Path) -> None:
    async def handler(method: str, params: Any) -> Any:
        return None

    async with LocalSandbox(handler, isolation="none", workdir_parent=tmp_path) as box:
        first = await box.execute_at("import time\nprint(time.time())", clock=1000.0, timeout_s=10)
        again = await box.execute_at("print(time.time())", clock=5.0, timeout_s=10)
    assert first.output == "1000.000001\n"
    assert again.output == "5.000001\n"
