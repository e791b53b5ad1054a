"""`rlm runs resume` when a replayed cell diverges and has no snapshot: it stops with the
hint, the run stays resumable, and `--accept-divergence` finishes it, telling the root."""

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

# Host memory outlives the process: the first attempt sleeps (and is killed), the
# resumed one does not. Nothing the cell prints depends on it.
SLOW = (
    "```repl\n"
    "if memory.get('attempted') is None:\n"
    "    memory['attempted'] = True\n"
    "    import time\n"
    "    time.sleep(120)\n"
    "print(total(seen))\n"
    "```"
)


def counting(counter: Path) -> str:
    """Reads and bumps a file outside the replay; the open handle does not pickle, so the
    cell gets no snapshot."""
    return (
        "```repl\nimport pathlib\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "handle = open(p)\n"
        "seen = [n] * 3\n"
        "def total(xs):\n    return sum(xs)\n"
        "print('run', n)\n```"
    )


def ask_and_kill(ctx: Path, env: dict[str, str], home: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlm_engine.cli.main", "ask", "count", "--context", str(ctx)]
        + ["--model", "openai/m", "--isolation", "none", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    kill_once_attempted(proc, home)


def test_resume_stops_with_the_hint_and_accept_divergence_finishes(tmp_path: Path) -> None:
    counter = tmp_path / "counter.txt"
    replies = [counting(counter), SLOW, "```repl\nFINAL(f'seen={seen}')\n```"]

    def policy(messages: list[dict[str, Any]]) -> str:
        assert is_root(messages), "no sub-calls in this run"
        return replies[min(turn(messages), 2)]

    ctx = tmp_path / "ctx.txt"
    ctx.write_text("a small context")
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        ask_and_kill(ctx, env, tmp_path / "home")
        run_id = json.loads(cli(["runs", "list", "--json"], env).stdout)[0]["run_id"]
        asked = len(sim.requests)

        stopped = cli(["runs", "resume", run_id], env)
        assert stopped.returncode == 1, stopped.stderr
        assert "NondeterminismError" in stopped.stderr and "r/1" in stopped.stderr
        assert "handle" in stopped.stderr  # why no snapshot could restore it
        assert "--accept-divergence" in stopped.stderr and "Traceback" not in stopped.stderr
        assert len(sim.requests) == asked  # it stopped before any model call

        resumed = cli(["runs", "resume", "--accept-divergence", run_id, "--json"], env)
        assert resumed.returncode == 0, resumed.stderr
        new = sim.requests[asked:]
    out = json.loads(resumed.stdout)
    assert out["stop_reason"] == "final" and out["answer"] == "seen=[3, 3, 3]"
    # Turn 1's reply came from the journal; the turn after the changed cell is asked anew
    # and names it, with its old and new output.
    told = message_text(new[0].messages[-1])
    assert turn(new[0].messages) == 1
    assert "cell 1.1 (r/1)" in told and "'run 1'" in told and "'run 3'" in told
