"""``rlm ask --memory-mb`` sets the whole-sandbox memory budget (simulator on loopback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli_support import cli, cli_env, turn

from rlm_engine.sandbox.factory import check_isolation
from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread

# Four children of 40 MiB each: over a 128 MiB budget together, far under the default.
FORK_FOUR = """
import os, time
done_r, done_w = os.pipe()
pids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = b"x" * (40 * 1024 * 1024)
        os.write(done_w, b"+")
        time.sleep(60)
        os._exit(0)
    pids.append(pid)
got = b""
while len(got) < 4:
    got += os.read(done_r, 4)
time.sleep(1)  # all four hold their memory: the watchdog samples them together
for pid in pids:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
print("all children done")
"""


def ask(tmp_path: Path, *flags: str) -> tuple[str, str]:
    def policy(messages: list[dict[str, Any]]) -> str:
        return f"```repl\n{FORK_FOUR}\n```" if turn(messages) == 0 else "FINAL(done)"

    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        args = ["ask", "q", "--model", "openai/m", "--isolation", "strict", "--json", *flags]
        proc = cli([*args, "--no-default-plugins"], env)
        feedback = message_text(sim.requests[1].messages[-1])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["answer"], feedback


def test_memory_mb_flag_stops_a_cell_over_the_budget(tmp_path: Path) -> None:
    assert check_isolation("auto") == "bubblewrap", "bubblewrap must be installed (see .ci/run)"
    answer, feedback = ask(tmp_path, "--memory-mb", "128")
    assert answer == "done"
    assert "SandboxRestarted" in feedback and "all children done" not in feedback


def test_the_default_budget_lets_the_same_cell_finish(tmp_path: Path) -> None:
    # Under the default 2048 MiB budget the four children's 160 MiB never trip it.
    answer, feedback = ask(tmp_path)
    assert answer == "done"
    assert "all children done" in feedback
