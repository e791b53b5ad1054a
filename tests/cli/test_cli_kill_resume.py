"""`kill -9` of `rlm ask` in the middle of a batch: the resume never repeats a journaled call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from cli_support import cli, cli_env, is_root, turn

from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread
from rlm_engine.store.factory import open_store

CALLS, WIDTH, KILL_AT = 48, 8, 20
BATCH = (
    "```repl\n"
    f"out = llm_query_batched([f'item {{i}}' for i in range({CALLS})])\n"
    "print(sum(a.startswith('answer to item') for a in out))\n"
    "```"
)


class KillingPolicy:
    """Root: one batch cell, then FINAL. Sub-calls: ``answer to <prompt>``; the arrival of
    sub-call KILL_AT SIGKILLs the CLI process (on the server's loop, between requests)."""

    def __init__(self) -> None:
        self.arrivals: list[str] = []
        self.pid: int | None = None
        self.killed = threading.Event()

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        if is_root(messages):
            return [BATCH, "```repl\nFINAL('done')\n```"][min(turn(messages), 1)]
        prompt = message_text(messages[-1])
        self.arrivals.append(prompt)
        if len(self.arrivals) == KILL_AT and self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            self.killed.set()
        return f"answer to {prompt}"


def test_a_killed_batch_resumes_without_repeating_journaled_calls(tmp_path: Path) -> None:
    policy = KillingPolicy()
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("ctx")
    ask = ["ask", "q", "--context", str(ctx), "--model", "openai/m", "--json"]
    with SimServerThread(SimConfig(ttft_s=0.05), CallablePolicy(policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlm_engine.cli.main", *ask, "--max-concurrency", str(WIDTH)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        policy.pid = proc.pid
        assert proc.wait(60) == -signal.SIGKILL
        assert policy.killed.is_set()
        before_resume = len(policy.arrivals)

        store = open_store(None, tmp_path / "home")
        try:
            run_id = store.list_runs(limit=1)[0].run_id
            snapshot = store.load_journal(run_id)
        finally:
            store.close()
        journaled = {
            c.response.removeprefix("answer to ")
            for c in snapshot.calls.values()
            if c.kind == "llm" and c.status == "completed"
        }
        assert journaled and len(journaled) < before_resume

        resumed = cli(["runs", "resume", run_id, "--json"], env)
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["answer"] == "done"
        again = Counter(policy.arrivals[before_resume:])

    assert set(again) | set(policy.arrivals[:before_resume]) == {f"item {i}" for i in range(CALLS)}
    assert max(again.values()) == 1
    # Nothing journaled before the kill is asked again; what is repeated was requested but
    # not yet journaled when the process died (in flight, or its reply not yet committed).
    assert not journaled & set(again)
    repeats = set(again) & set(policy.arrivals[:before_resume])
    assert len(repeats) == before_resume - len(journaled)
