"""Crash resume, offline replay and sessions through the CLI, against the simulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cli_support import cli, cli_env, is_root, kill_once_attempted, turn

from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread
from rlm_engine.store.factory import open_store

# The first attempt hangs in the cell after its sub-call; host-side memory (which outlives
# the process) tells the resumed attempt not to. Nothing the cell prints depends on it.
SLOW_CELL = (
    "```repl\n"
    "a = llm_query('what is six times seven?')\n"
    "if memory.get('attempted') is None:\n"
    "    memory['attempted'] = True\n"
    "    import time\n"
    "    time.sleep(120)\n"
    "print(a)\n"
    "```"
)


def question(messages: list[dict[str, Any]]) -> str:
    return message_text(messages[1]).split("Question: ", 1)[1].split("\n", 1)[0]


def crash_policy(messages: list[dict[str, Any]]) -> str:
    if not is_root(messages):
        return "forty-two"
    return [SLOW_CELL, "```repl\nFINAL(a)\n```"][min(turn(messages), 1)]


def ask_and_kill_in_the_cell(ctx: Path, env: dict[str, str], home: Path) -> None:
    """Start `rlm ask` and SIGKILL it while SLOW_CELL sleeps, its sub-call journaled."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlm_engine.cli.main",
            "ask",
            "What is six times seven?",
            "--context",
            str(ctx),
            "--model",
            "openai/m",
            "--json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    kill_once_attempted(proc, home)


def test_kill_9_during_a_cell_then_resume_repeats_no_answered_request(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("a small context")
    with SimServerThread(SimConfig(), CallablePolicy(crash_policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        ask_and_kill_in_the_cell(ctx, env, tmp_path / "home")
        before = [(r.model, message_text(r.messages[-1])) for r in sim.requests]

        listing = cli(["runs", "list", "--json"], env)
        assert listing.returncode == 0, listing.stderr
        run = json.loads(listing.stdout)[0]
        assert run["status"] == "interrupted"

        resumed = cli(["runs", "resume", run["run_id"], "--json"], env)
        assert resumed.returncode == 0, resumed.stderr
        after = [(r.model, message_text(r.messages[-1])) for r in sim.requests]
    out = json.loads(resumed.stdout)
    assert out["answer"] == "forty-two" and out["stop_reason"] == "final"
    assert out["run_id"] == run["run_id"]
    assert after[: len(before)] == before
    new = after[len(before) :]
    assert len(new) == 1, new  # only the root turn after the crash; nothing answered is asked again
    assert "[cell 1 output]\nforty-two" in new[0][1]
    store = open_store(None, tmp_path / "home")
    try:
        final = store.get_run(run["run_id"])
        assert final is not None and final.status == "completed" and final.attempt == 2
    finally:
        store.close()


def pinned_policy(messages: list[dict[str, Any]]) -> str:
    if not is_root(messages):
        return "forty-two"
    seen = SLOW_CELL.replace("```repl\n", "```repl\nseen = context\n", 1)
    return [seen, "```repl\nFINAL(seen)\n```"][min(turn(messages), 1)]


def test_resume_and_export_see_the_context_as_it_was_when_the_run_began(
    tmp_path: Path,
) -> None:
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("the original context")
    with SimServerThread(SimConfig(), CallablePolicy(pinned_policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        ask_and_kill_in_the_cell(ctx, env, tmp_path / "home")
        ctx.write_text("edited after the crash")
        run_id = json.loads(cli(["runs", "list", "--json"], env).stdout)[0]["run_id"]
        resumed = cli(["runs", "resume", run_id, "--json"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["answer"] == "the original context"
    ctx.unlink()
    notebook = tmp_path / "run.ipynb"
    exported = cli(["runs", "export", run_id, "--format", "ipynb", "-o", str(notebook)], env)
    assert exported.returncode == 0, exported.stderr
    assert "the original context" in notebook.read_text()


def test_replay_runs_offline_with_no_model_requests(tmp_path: Path) -> None:
    def policy(messages: list[dict[str, Any]]) -> str:
        if not is_root(messages):
            return "sub-answer"
        return [
            "```repl\nx = llm_query_batched(['a', 'b']) + [context]\nprint(x)\n```",
            "```repl\nFINAL(' & '.join(x))\n```",
        ][min(turn(messages), 1)]

    ctx = tmp_path / "ctx.txt"
    ctx.write_text("ctx")
    ask = ["ask", "q", "--context", str(ctx), "--model", "openai/m", "--json"]
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        first = json.loads(cli(ask, env).stdout)
        url = sim.url
    # The simulator is gone: any model request would fail. The context file is gone too:
    # the replay reads the copy pinned in the store.
    ctx.unlink()
    env = cli_env(tmp_path, url)
    replay = cli(["replay", first["run_id"], "--json"], env)
    assert replay.returncode == 0, replay.stderr
    again = json.loads(replay.stdout)
    assert again["answer"] == first["answer"] == "sub-answer & sub-answer & ctx"


def test_a_session_keeps_its_repl_state_and_memory_across_processes(tmp_path: Path) -> None:
    def policy(messages: list[dict[str, Any]]) -> str:
        q = question(messages)
        if "New question: double it" in message_text(messages[-1]) or q == "double it":
            return "```repl\nFINAL(total * 2)\n```"
        return ["```repl\ntotal = 21\nmemory['unit'] = 'apples'\n```", "FINAL(stored)"][
            min(turn(messages), 1)
        ]

    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        first = cli(["ask", "remember 21", "--session", "s1", "--model", "openai/m", "--json"], env)
        assert first.returncode == 0, first.stderr
        requests_after_first = len(sim.requests)
        second = cli(["ask", "double it", "--session", "s1", "--json"], env)
        assert second.returncode == 0, second.stderr
        new_requests = sim.requests[requests_after_first:]
    assert json.loads(second.stdout)["answer"] == "42"
    assert len(new_requests) == 1  # restoring the session replayed the journal, no model calls
    history = new_requests[0].messages
    assert any("remember 21" in message_text(m) for m in history)  # the history continued
    store = open_store(None, tmp_path / "home")
    try:
        from rlm_engine.store.records import MemoryScope

        item = store.memory_get(MemoryScope.session("s1"), "unit")
        assert item is not None and item.value == "apples"
        assert [r.session for r in store.list_runs()] == ["s1", "s1"]
    finally:
        store.close()
