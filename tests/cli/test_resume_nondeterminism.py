"""`kill -9` of `rlm ask` after a cell printed uuid4, urandom, secrets and monotonic values:
`rlm runs resume` replays that cell to the same output and repeats no journaled call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from cli_support import cli, cli_env, is_root, turn

from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread
from rlm_engine.store.factory import open_store

DRAWS = (
    "```repl\n"
    "import os, random, secrets, time, uuid\n"
    "t0 = time.monotonic()\n"
    "stamp = [str(uuid.uuid4()), os.urandom(8).hex(), secrets.token_hex(8),\n"
    "         random.SystemRandom().random(), random.Random().random(),\n"
    "         time.monotonic(), time.perf_counter_ns(), time.monotonic() - t0]\n"
    "print(stamp, llm_query('first'))\n"
    "```"
)
KILLED = "```repl\nprint(llm_query('second'))\n```"
FINAL = "```repl\nFINAL(stamp[0])\n```"


class KillingPolicy:
    """Root: the drawing cell, the cell whose sub-call kills the CLI, then FINAL. The
    first arrival of sub-call ``second`` SIGKILLs the CLI: the first cell and the root's
    second reply are durable by then (the second cell's start committed them)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.pid: int | None = None
        self.killed = threading.Event()

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        if is_root(messages):
            self.requests.append(f"root {turn(messages)}")
            return [DRAWS, KILLED, FINAL][min(turn(messages), 2)]
        prompt = message_text(messages[-1])
        self.requests.append(prompt)
        if prompt == "second" and self.pid is not None and not self.killed.is_set():
            os.kill(self.pid, signal.SIGKILL)
            self.killed.set()
        return f"answer to {prompt}"


def test_a_killed_run_whose_cells_drew_entropy_resumes(tmp_path: Path) -> None:
    policy = KillingPolicy()
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("ctx")
    ask = ["ask", "q", "--context", str(ctx), "--model", "openai/m", "--json"]
    with SimServerThread(SimConfig(ttft_s=0.01), CallablePolicy(policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlm_engine.cli.main", *ask],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        policy.pid = proc.pid
        assert proc.wait(60) == -signal.SIGKILL
        assert policy.killed.is_set()
        before = list(policy.requests)
        assert before == ["root 0", "first", "root 1", "second"]

        store = open_store(None, tmp_path / "home")
        try:
            run_id = store.list_runs(limit=1)[0].run_id
            snapshot = store.load_journal(run_id)
        finally:
            store.close()
        printed = [c.output for c in snapshot.cells if c.output and "answer to first" in c.output]
        assert len(printed) == 1

        resumed = cli(["runs", "resume", run_id, "--json"], env)
        assert resumed.returncode == 0, resumed.stderr
        after = policy.requests[len(before) :]

    # The drawing cell replayed to its journaled output (not restored from its snapshot
    # after diverging): its uuid4 is the answer, and only the killed cell's sub-call (never
    # journaled) and the root's next turn were asked.
    result = json.loads(resumed.stdout)
    assert result["answer"] and result["answer"] in printed[0]
    assert after == ["second", "root 2"]
    cells = [node["detail"] for node in _nodes(result["tree"]) if node["kind"] == "cell"]
    assert any(detail.get("replayed") for detail in cells)
    assert not any("diverged" in d or "restored_from_snapshot" in d for d in cells)


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("children", []) for n in _nodes(child))]
