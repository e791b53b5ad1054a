"""The chain: order, amend, block, crash isolation, required plugins, entry points."""

from __future__ import annotations

import pytest

from rlm_engine import RLM
from rlm_engine.errors import ConfigurationError
from rlm_engine.events import Event, PluginFailed
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.plugins import Amend, CellDecision, CellInfo, Plugin, load_entry_point_plugins


def _turns(*replies: str) -> ScriptedModel:
    return ScriptedModel(
        lambda m: replies[min(sum(x.role == "assistant" for x in m), len(replies) - 1)]
    )


class Doubler(Plugin):
    name = "doubler"

    async def before_cell(self, cell: CellInfo) -> CellDecision | None:
        return Amend(cell.code.replace("21", "42"))


class Broken(Plugin):
    name = "broken"

    def __init__(self, required: bool = False) -> None:
        self.required = required

    async def before_cell(self, cell: CellInfo) -> CellDecision | None:
        raise RuntimeError("plugin bug")


class Recorder(Plugin):
    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def before_run(self, run):  # type: ignore[no-untyped-def]
        self.calls.append("before_run")

    async def after_cell(self, cell, result):  # type: ignore[no-untyped-def]
        self.calls.append(f"after_cell:{result.status}")

    async def after_run(self, run, result):  # type: ignore[no-untyped-def]
        self.calls.append(f"after_run:{result.stop_reason}")


def test_an_amended_cell_runs_the_amended_code() -> None:
    root = _turns("```repl\nprint(21)\n```", "FINAL(ok)")
    with RLM(root, plugins=[Doubler()]) as rlm:
        result = rlm.run("q")
    assert "[cell 1 output]\n42" in root.calls[1][-1].content
    assert result.tree.children[1].detail["amended_code"] == "print(42)"


def test_a_failing_plugin_is_reported_and_the_run_goes_on() -> None:
    root = _turns("```repl\nprint(7)\n```", "FINAL(ok)")
    recorder = Recorder()
    events: list[Event] = []
    with RLM(root, plugins=[Broken(), recorder], on_event=events.append) as rlm:
        result = rlm.run("q")
    assert result.answer == "ok"
    failures = [e for e in events if isinstance(e, PluginFailed)]
    assert len(failures) == 1 and failures[0].plugin == "broken"
    assert failures[0].hook == "before_cell" and "plugin bug" in failures[0].error
    assert recorder.calls == ["before_run", "after_cell:ok", "after_run:final"]


def test_a_required_plugin_failure_stops_the_run_with_an_error() -> None:
    root = _turns("```repl\nprint(7)\n```", "FINAL(ok)")
    with RLM(root, plugins=[Broken(required=True)]) as rlm:
        result = rlm.run("q")
    assert result.stop_reason == "error"
    assert "required plugin 'broken'" in result.stop_detail


def test_unknown_entry_point_plugin_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="rlm_engine.plugins"):
        load_entry_point_plugins(["no-such-plugin"])
