"""`rlm ask --session NAME` with settings that change between questions, against the
simulator: the REPL is rebuilt from the earlier runs' cells, with no model request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli_support import cli, cli_env, is_root, turn

from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread
from rlm_engine.store.factory import open_store
from rlm_engine.store.records import MemoryScope

FIRST = (
    "```repl\n"
    "total = 21\n"
    "half = llm_query('what is half of forty-two?')\n"
    "memory['unit'] = 'apples'\n"
    "print(total, half)\n"
    "```"
)
SECOND = (
    "```repl\nnow = llm_query('and now?')\n"
    "FINAL(f\"{total * 2} {memory['unit']} (half was {half}, now {now})\")\n```"
)


def question_of(messages: list[dict[str, Any]]) -> str:
    return message_text(messages[1]).split("Question: ", 1)[1].split("\n", 1)[0]


def policy(messages: list[dict[str, Any]]) -> str:
    if not is_root(messages):
        return "twenty-one"
    if question_of(messages) == "double it":
        return SECOND
    return [FIRST, "```repl\nFINAL(str(total))\n```"][min(turn(messages), 1)]


def test_a_session_keeps_its_variables_and_memory_under_new_settings(tmp_path: Path) -> None:
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        first = cli(
            ["ask", "remember 21", "--session", "s", "--model", "openai/first", "--json"], env
        )
        assert first.returncode == 0, first.stderr
        before = len(sim.requests)
        second = cli(
            [
                "ask",
                "double it",
                "--session",
                "s",
                "--model",
                "openai/second",
                "--sub-model",
                "openai/second-sub",
                "--instructions",
                "Answer tersely.",
                "--max-iterations",
                "4",
                "--max-sub-calls",
                "3",
                "--json",
            ],
            env,
        )
        assert second.returncode == 0, second.stderr
        asked = sim.requests[before:]
    assert json.loads(second.stdout)["answer"] == "42 apples (half was twenty-one, now twenty-one)"
    assert "warning" not in second.stderr
    # The second question asked only its own calls, of the models given for it: the root
    # turn (with the new instructions and what the session did before) and its sub-call.
    assert [r.model for r in asked] == ["second", "second-sub"]
    prompt = "\n".join(message_text(m) for m in asked[0].messages)
    assert "Answer tersely." in prompt
    assert "remember 21" in prompt and "total (int)" in prompt
    store = open_store(None, tmp_path / "home")
    try:
        item = store.memory_get(MemoryScope.session("s"), "unit")
        assert item is not None and item.value == "apples"
        runs = store.list_runs(session="s")
        assert [(r.model, r.status) for r in runs] == [
            ("openai/second", "completed"),
            ("openai/first", "completed"),
        ]
    finally:
        store.close()


def counting_policy(messages: list[dict[str, Any]]) -> str:
    """Question N sets ``vN`` from a sub-call; the last one sums them."""
    if not is_root(messages):
        return "1"
    q = question_of(messages)
    if q == "sum":
        return "```repl\nFINAL(str(v1 + v2 + v3))\n```"
    n = q.split()[-1]
    # What the cell prints depends on the time and randomness: restored, it prints the same.
    cell = (
        f"```repl\nimport random, time\nv{n} = int(llm_query('one for {n}')) * {n}\n"
        f"print(v{n}, random.random(), time.time())\n```"
    )
    return [cell, f"```repl\nFINAL(str(v{n}))\n```"][min(turn(messages), 1)]


def test_restoring_three_runs_makes_no_model_request(tmp_path: Path) -> None:
    with SimServerThread(SimConfig(), CallablePolicy(counting_policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        for n in (1, 2, 3):
            model = f"openai/m{n}"
            done = cli(["ask", f"set {n}", "--session", "t", "--model", model, "--json"], env)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["answer"] == str(n)
        before = len(sim.requests)
        last = cli(["ask", "sum", "--session", "t", "--model", "openai/m4", "--json"], env)
        assert last.returncode == 0, last.stderr
        asked = sim.requests[before:]
    assert json.loads(last.stdout)["answer"] == "6"
    # One root turn, and none of the earlier sub-calls was asked again.
    assert len(asked) == 1 and is_root([dict(m) for m in asked[0].messages])
    assert "warning" not in last.stderr


def drifting_policy(messages: list[dict[str, Any]]) -> str:
    if question_of(messages) == "again":
        return "```repl\nFINAL(str(seen))\n```"
    cell = "```repl\nseen = memory.get('n', 0)\nmemory['n'] = seen + 1\nprint(seen)\n```"
    return [cell, "FINAL(counted)"][min(turn(messages), 1)]


def test_a_cell_whose_output_changed_is_a_warning_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    with SimServerThread(SimConfig(), CallablePolicy(drifting_policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        first = cli(["ask", "count", "--session", "d", "--model", "openai/m", "--json"], env)
        assert first.returncode == 0, first.stderr
        second = cli(["ask", "again", "--session", "d", "--model", "openai/m", "--json"], env)
    assert second.returncode == 0, second.stderr
    first_run = json.loads(first.stdout)["run_id"]
    warning = [line for line in second.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1
    assert first_run in warning[0] and "cell 1.1" in warning[0] and "differs" in warning[0]
    # The restored cell read memory as it is now (1); the store kept its value.
    assert json.loads(second.stdout)["answer"] == "1"
    store = open_store(None, tmp_path / "home")
    try:
        item = store.memory_get(MemoryScope.session("d"), "n")
        assert item is not None and item.value == 1
    finally:
        store.close()


def recursive_policy(messages: list[dict[str, Any]]) -> str:
    q = question_of(messages)
    if q == "child?":
        return "FINAL(kid)"
    if q == "later":
        return "```repl\nFINAL(answer_of_child)\n```"
    cell = "```repl\nanswer_of_child = rlm_query('child?')\nprint(answer_of_child)\n```"
    return [cell, "FINAL(asked)"][min(turn(messages), 1)]


def test_a_child_rlms_answer_is_restored_from_the_journal(tmp_path: Path) -> None:
    with SimServerThread(SimConfig(), CallablePolicy(recursive_policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        first = cli(
            ["ask", "ask a child", "--session", "c", "--model", "openai/m", "--max-depth", "2"],
            env,
        )
        assert first.returncode == 0, first.stderr
        before = len(sim.requests)
        later = cli(["ask", "later", "--session", "c", "--model", "openai/m", "--json"], env)
        asked = sim.requests[before:]
    assert later.returncode == 0, later.stderr
    assert "warning" not in later.stderr
    assert json.loads(later.stdout)["answer"] == "kid"
    assert len(asked) == 1  # the child was not asked again
