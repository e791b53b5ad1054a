"""Hostile recursion against the isolated sandbox (bubblewrap in CI: never skipped there).

A tree that fans out at every level finishes instead of stalling on child slots, and a
cell that starts children from many threads at once cannot start more than the cap. The
tree is the engine test's (``tests/engine/test_recursion.py``: 155 child RLMs under
``max_depth=4``), each child in its own isolated REPL.
"""

from __future__ import annotations

import pytest

from recursion_support import WIDTH, cell_statuses, fan_out, fence, level_of
from rlm_engine import RLM
from rlm_engine.events import Event
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.sandbox.isolation import probe
from rlm_engine.types import Message

pytestmark = pytest.mark.skipif(
    probe().bwrap is None,
    reason="bubblewrap is not usable on this machine; CI installs it (.ci/run) so this "
    "suite runs there: " + "; ".join(probe().problems),
)


async def test_a_tree_fanning_out_at_every_level_finishes_in_isolated_sandboxes() -> None:
    events: list[Event] = []
    rlm = RLM(
        ScriptedModel(fan_out),
        ScriptedModel(lambda m: "1"),
        isolation="strict",
        plugins=[],
        on_event=events.append,
        max_depth=4,
        max_child_concurrency=2,
        cell_timeout_s=90,  # under the suite's per-test timeout: a stall fails as a timeout
    )
    async with rlm:
        result = await rlm.arun("level 0")
    assert "timeout" not in cell_statuses(events), result.answer
    assert result.answer == str(WIDTH**4)
    assert len([n for n in result.tree.walk() if n.kind == "rlm"]) == WIDTH + WIDTH**2 + WIDTH**3


CHILD_STORM = """
import threading
results = []
def start(i):
    try:
        results.append(rlm_query(f'level 1 part {i}'))
    except RuntimeError as exc:
        results.append(str(exc))
threads = [threading.Thread(target=start, args=(i,)) for i in range(40)]
for t in threads:
    t.start()
for t in threads:
    t.join()
FINAL(f"{sum(r == '1' for r in results)} {sum('ChildLimitExceeded' in r for r in results)}")
"""


async def test_children_started_from_many_threads_at_once_stop_at_the_cap() -> None:
    def policy(messages: list[Message]) -> str:
        if level_of(messages) == 1:
            return "FINAL('1')"
        return fence(CHILD_STORM)

    events: list[Event] = []
    rlm = RLM(
        ScriptedModel(policy),
        ScriptedModel(lambda m: "1"),
        isolation="strict",
        plugins=[],
        on_event=events.append,
        max_depth=2,
        max_children=6,
        cell_timeout_s=90,
    )
    async with rlm:
        result = await rlm.arun("level 0")
    assert "timeout" not in cell_statuses(events)
    assert result.answer == "6 34"
    assert len([n for n in result.tree.walk() if n.kind == "rlm"]) == 6
