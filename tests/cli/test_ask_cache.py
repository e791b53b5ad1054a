"""`rlm ask` keeps deterministic sub-call replies in the store: a second run asking the
same sub-questions sends none of them to the server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli_support import cli, cli_env, is_root, turn

from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread

ROOT_CODE = "```repl\nprint(llm_query_batched([f'part {i}' for i in range(4)]))\n```"


def policy(messages: list[dict[str, Any]]) -> str:
    if not is_root(messages):
        return f"seen {message_text(messages[-1])}"
    return ROOT_CODE if turn(messages) == 0 else "FINAL(done)"


def sub_requests(sim: Any) -> int:
    return sum(1 for r in sim.requests if r.status == 200 and r.model == "sub")


def test_a_second_run_takes_its_sub_call_replies_from_the_store(tmp_path: Path) -> None:
    ask = ["ask", "q", "--model", "openai/root", "--sub-model", "openai/sub", "--json"]
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        sampled = cli(ask, env)
        assert sampled.returncode == 0, sampled.stderr
        assert sub_requests(sim) == 4  # the provider's default temperature: nothing cached
        runs = [cli([*ask, "--sub-temperature", "0"], env) for _ in range(2)]
        after_two = sub_requests(sim)
        uncached = cli([*ask, "--sub-temperature", "0", "--response-cache", "off"], env)
        after_off = sub_requests(sim)
    for proc in [*runs, uncached]:
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["answer"] == "done"
    assert after_two == 4 + 4  # the first deterministic run asks; the second reuses
    assert after_off == after_two + 4
    stats = json.loads(cli(["cache", "stats", "--json"], env).stdout)
    assert stats == [{"model": "openai/sub", "entries": 4, "hits": 4}]
    cleared = json.loads(cli(["cache", "clear", "--model", "openai/sub", "--json"], env).stdout)
    assert cleared == {"removed": 4}
    assert json.loads(cli(["cache", "stats", "--json"], env).stdout) == []
