"""Nested recursion: every level fans out with ``rlm_query_batched`` and the run finishes.

The tree is the one ``--max-depth 4`` allows: the root (depth 0) and child RLMs at depths
1 to 3 each start five sub-calls; at depth 3 they are plain model calls (depth 4). That
is 5 + 25 + 125 = 155 child RLMs and 625 leaf calls, so the answer is 625. The REPLs run
without OS isolation so that one slot per depth (a serial tree) stays quick; the same tree
in isolated REPLs is in ``tests/sandbox/test_adversarial_recursion.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from recursion_support import WIDTH, cell_statuses, fan_out, fence, level_of
from rlm_engine import RLM
from rlm_engine.engine.config import RLMConfig
from rlm_engine.errors import ConfigurationError
from rlm_engine.events import CellFinished, Event
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.types import Message


def tree_rlm(events: list[Event], **settings: Any) -> RLM:
    return RLM(
        ScriptedModel(fan_out),
        ScriptedModel(lambda m: "1"),
        isolation="none",
        on_event=events.append,
        plugins=[],
        **settings,
    )


@pytest.mark.parametrize("child_concurrency", [1, 4])
async def test_width_five_depth_four_tree_finishes(child_concurrency: int) -> None:
    events: list[Event] = []
    rlm = tree_rlm(
        events,
        max_depth=4,
        max_child_concurrency=child_concurrency,
        cell_timeout_s=90,  # under the suite's per-test timeout: a stall fails as a cell timeout
    )
    async with rlm:
        result = await rlm.arun("level 0")
    assert "timeout" not in cell_statuses(events), result.answer
    assert result.stop_reason == "final", result.stop_detail
    assert result.answer == str(WIDTH**4)
    rlms = [n for n in result.tree.walk() if n.kind == "rlm"]
    assert len(rlms) == WIDTH + WIDTH**2 + WIDTH**3
    assert result.sub_calls == len(rlms) + WIDTH**4


async def test_provider_calls_stay_within_the_concurrency_bounds() -> None:
    """Every model request (plain sub-calls and the child RLMs' own turns, at every depth)
    shares ``max_concurrency``; the child RLMs running at once (and so their own turns) are
    at most ``max_child_concurrency`` per depth."""
    in_flight: dict[str, int] = {"all": 0}
    peak: dict[str, int] = {"all": 0}

    async def counted(kind: str, reply: str) -> str:
        for key in (kind, "all"):
            in_flight[key] = in_flight.get(key, 0) + 1
            peak[key] = max(peak.get(key, 0), in_flight[key])
        await asyncio.sleep(0.01)
        for key in (kind, "all"):
            in_flight[key] -= 1
        return reply

    async def root_turn(messages: list[Message]) -> str:
        return await counted(f"level {level_of(messages)}", fan_out(messages))

    async def leaf(messages: list[Message]) -> str:
        return await counted("leaf", "1")

    rlm = RLM(
        ScriptedModel(root_turn),
        ScriptedModel(leaf),
        isolation="none",
        plugins=[],
        max_depth=3,
        max_concurrency=3,
        max_child_concurrency=2,
        cell_timeout_s=90,
    )
    async with rlm:
        result = await rlm.arun("level 0")
    assert result.answer == str(WIDTH**3), result.answer
    assert peak["all"] == 3
    assert peak["level 1"] <= 2 and peak["level 2"] <= 2


def refusing(cap_test: str) -> ScriptedModel:
    turns = [fence(cap_test), "FINAL(unreachable)"]
    return ScriptedModel(lambda m: turns[min(sum(x.role == "assistant" for x in m), 1)])


async def test_a_batch_past_the_children_cap_is_refused_before_any_child_starts() -> None:
    cell = (
        "try:\n"
        "    rlm_query_batched([f'level 1 part {i}' for i in range(6)])\n"
        "except RuntimeError as exc:\n"
        "    FINAL(f'refused: {exc}')"
    )
    rlm = RLM(
        refusing(cell),
        ScriptedModel(lambda m: "1"),
        isolation="none",
        plugins=[],
        max_depth=2,
        max_children=5,
    )
    async with rlm:
        result = await rlm.arun("level 0")
    assert result.answer.startswith("refused: rlm_query_batched failed: ChildLimitExceeded")
    assert "may start 5 (0 started, 5 left)" in result.answer
    assert not [n for n in result.tree.walk() if n.kind == "rlm"]
    assert result.sub_calls == 0


@pytest.mark.parametrize(("cap", "finishes"), [(30, True), (29, False)])
async def test_the_children_cap_counts_every_child_of_the_tree(cap: int, finishes: bool) -> None:
    events: list[Event] = []
    rlm = tree_rlm(events, max_depth=3, max_children=cap, cell_timeout_s=90)
    async with rlm:
        result = await rlm.arun("level 0")
    rlms = [n for n in result.tree.walk() if n.kind == "rlm"]
    refusals = [
        e for e in events if isinstance(e, CellFinished) and "ChildLimitExceeded" in (e.error or "")
    ]
    assert "timeout" not in cell_statuses(events)
    if finishes:
        assert result.answer == str(WIDTH**3) and len(rlms) == cap and not refusals
    else:
        # The last depth-1 child's batch of five does not fit: it is refused whole.
        assert len(rlms) == cap - WIDTH + 1 and len(refusals) == 1
        assert "(25 started, 4 left)" in (refusals[0].error or "")


def test_max_children_is_validated() -> None:
    assert RLMConfig().max_children == 1_000
    assert RLMConfig(max_children=None).max_children is None
    with pytest.raises(ConfigurationError, match="max_children must be >= 0"):
        RLMConfig(max_children=-1)
