"""The peer fan-out policy answers each engine in its own format."""

from __future__ import annotations

from rlm_engine.sim.oracle import ROOT_PROMPT_START
from rlm_engine.sim.oracle_fanout import FanoutPolicy, engine_of


def test_each_engine_gets_its_own_finish() -> None:
    policy = FanoutPolicy()
    ours = [
        {"role": "system", "content": ROOT_PROMPT_START},
        {"role": "user", "content": "FANOUT=7"},
    ]
    rlms = [
        {"role": "system", "content": 'Recursive Language Model ... answer["ready"]'},
        {"role": "user", "content": "FANOUT=7"},
    ]
    dspy = [{"role": "user", "content": "[[ ## query ## ]]\nFANOUT=7\nuse SUBMIT(...)"}]
    assert [engine_of(m) for m in (ours, rlms, dspy)] == ["rlm-engine", "rlms", "dspy"]
    assert 'FINAL_VAR("report")' in policy("m", ours) and "range(7)" in policy("m", ours)
    assert 'answer["ready"] = True' in policy("m", rlms)
    reply = policy("m", dspy)
    assert reply.startswith("[[ ## reasoning ## ]]") and "SUBMIT(answer=report)" in reply
    assert policy("m", [{"role": "user", "content": "fanout item 3"}]) == "ok"


def test_turns_writes_one_trivial_cell_per_turn_then_finishes() -> None:
    policy = FanoutPolicy()
    messages: list[dict[str, str]] = [
        {"role": "system", "content": ROOT_PROMPT_START},
        {"role": "user", "content": "TURNS=3"},
    ]
    replies = []
    for _ in range(4):
        reply = policy("m", messages)
        replies.append(reply)
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "ok"}]
    assert [("# turn 1" in r, "# turn 2" in r, "# turn 3" in r) for r in replies[:3]] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]
    assert 'FINAL_VAR("report")' in replies[3] and "# turn" not in replies[3]
    dspy = [{"role": "user", "content": "[[ ## query ## ]]\nTURNS=0\nuse SUBMIT(...)"}]
    assert "SUBMIT(answer=report)" in policy("m", dspy)
