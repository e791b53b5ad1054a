"""Reply policies on their own."""

from __future__ import annotations

from typing import Any

import pytest

from rlm_engine.sim import CallablePolicy, EchoPolicy, PolicyExhaustedError, ScriptedPolicy
from rlm_engine.sim.policies import message_text, run_policy


async def test_scripted_policy_in_order_then_exhausted() -> None:
    policy = ScriptedPolicy(["a", "b"])
    assert [await run_policy(policy, "m", []) for _ in range(2)] == ["a", "b"]
    assert policy.remaining == 0
    with pytest.raises(PolicyExhaustedError, match="given 2"):
        await run_policy(policy, "m", [])


async def test_scripted_policy_can_cycle() -> None:
    policy = ScriptedPolicy(["a", "b"], cycle=True)
    assert [await run_policy(policy, "m", []) for _ in range(5)] == ["a", "b", "a", "b", "a"]


async def test_echo_policy_uses_last_user_message() -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "sec"}, {"type": "text", "text": "ond"}],
        },
    ]
    assert await run_policy(EchoPolicy(prefix="> "), "m", messages) == "> second"


async def test_callable_policy_sync_and_bad_return() -> None:
    assert await run_policy(CallablePolicy(lambda messages: str(len(messages))), "m", [{}]) == "1"

    def not_text(model: str, messages: list[dict[str, Any]]) -> Any:
        return 42

    with pytest.raises(TypeError, match="expected str"):
        await run_policy(not_text, "m", [])


def test_message_text_ignores_non_text() -> None:
    assert message_text({"content": None}) == ""
    assert message_text({"content": [{"type": "image_url"}, "junk"]}) == ""
