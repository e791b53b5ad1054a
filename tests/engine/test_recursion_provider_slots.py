"""``max_concurrency`` bounds every model request of a recursion tree, counted at the provider.

The simulator on loopback plays both models: a root turn (a system prompt first) fans out
one level down with ``rlm_query_batched`` as ``recursion_support.fan_out`` does, a plain
sub-call answers ``1``. The policy counts the requests it is serving at once, so the bound
is checked where a provider would see it: the child RLMs' own root turns share the slots
of the plain sub-calls, and the width-5 depth-4 tree still finishes (no deadlock: a parent
waiting for its children holds no provider slot).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from recursion_support import WIDTH, cell_statuses, fan_out
from rlm_engine import RLM
from rlm_engine.events import Event
from rlm_engine.lm import aclose_model, resolve_model
from rlm_engine.sim import CallablePolicy
from rlm_engine.sim.policies import JsonMessage, message_text
from rlm_engine.types import Message, Role
from sim_support import StartSim

ROLES: dict[object, Role] = {"system": "system", "user": "user", "assistant": "assistant"}


@dataclass
class InFlight:
    """Requests the simulator is answering now, their peak, and how many it answered."""

    now: int = 0
    peak: int = 0
    served: int = 0
    roles: dict[str, int] = field(default_factory=dict[str, int])

    async def reply(self, messages: list[JsonMessage]) -> str:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            # Hold the request open across a few loop turns, so that requests sent at once
            # really overlap at the server.
            for _ in range(3):
                await asyncio.sleep(0)
            is_turn = bool(messages) and messages[0].get("role") == "system"
            kind = "turn" if is_turn else "leaf"
            self.roles[kind] = self.roles.get(kind, 0) + 1
            if not is_turn:
                return "1"
            return fan_out([Message(ROLES[m.get("role")], message_text(m)) for m in messages])
        finally:
            self.now -= 1
            self.served += 1


async def run_tree(start_sim: StartSim, *, depth: int, concurrency: int) -> tuple[InFlight, str]:
    counter = InFlight()
    sim = await start_sim(policy=CallablePolicy(counter.reply))
    env = {"OPENAI_BASE_URL": sim.url, "OPENAI_API_KEY": "sim"}
    root = resolve_model("openai/sim-root", env=env)
    sub = resolve_model("openai/sim-sub", env=env)
    events: list[Event] = []
    rlm = RLM(
        root,
        sub,
        isolation="none",
        plugins=[],
        on_event=events.append,
        max_depth=depth,
        max_concurrency=concurrency,
        max_child_concurrency=4,
        cell_timeout_s=90,  # under the suite's per-test timeout: a stall fails as a timeout
    )
    try:
        async with rlm:
            result = await rlm.arun("level 0")
    finally:
        await aclose_model(root)
        await aclose_model(sub)
    assert "timeout" not in cell_statuses(events), result.answer
    assert result.stop_reason == "final", result.stop_detail
    return counter, result.answer


async def test_two_slots_bound_every_request_of_a_depth_three_tree(start_sim: StartSim) -> None:
    counter, answer = await run_tree(start_sim, depth=3, concurrency=2)
    assert answer == str(WIDTH**3)
    # 1 + 5 + 25 root turns and 125 leaves; with four child RLMs per depth running at once
    # their turns alone would pass two without the shared slots.
    assert counter.roles == {"turn": 1 + WIDTH + WIDTH**2, "leaf": WIDTH**3}
    assert counter.peak == 2


async def test_the_width_five_depth_four_tree_finishes_under_two_slots(
    start_sim: StartSim,
) -> None:
    counter, answer = await run_tree(start_sim, depth=4, concurrency=2)
    assert answer == str(WIDTH**4)
    assert counter.served == 1 + WIDTH + WIDTH**2 + WIDTH**3 + WIDTH**4
    assert counter.peak <= 2
