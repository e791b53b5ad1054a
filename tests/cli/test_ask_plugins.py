"""`rlm ask` acceptance for plugins and fallback, through the simulator on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread


def is_root(messages: list[dict[str, Any]]) -> bool:
    return bool(messages) and message_text(messages[0]).startswith("You answer a question")


def scripted_root(*replies: str) -> CallablePolicy:
    def policy(messages: list[dict[str, Any]]) -> str:
        done = sum(1 for m in messages if m.get("role") == "assistant")
        return replies[min(done, len(replies) - 1)]

    return CallablePolicy(policy)


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlm_engine.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def base_env(tmp_path: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "RLM_"))}
    env.update(OPENAI_BASE_URL=url, RLM_HOME=str(tmp_path / "home"))
    return env


def test_destructive_cell_is_blocked_recorded_and_the_run_finishes(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    policy = scripted_root(
        f"```repl\nimport shutil, os\nos.system('rm -rf {target}')\n```",
        "The command was blocked; I will answer without it.\nFINAL(kept)",
    )
    with SimServerThread(SimConfig(), policy) as sim:
        env = base_env(tmp_path, sim.url)
        proc = cli(["ask", "clean up", "--model", "openai/m", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["answer"] == "kept" and out["blocked_cells"] == 1
    assert (target / "keep.txt").exists()
    shown = json.loads(cli(["runs", "show", out["run_id"], "--json"], env).stdout)
    blocked = [e for e in shown["events"] if e["type"] == "cell_blocked"]
    assert len(blocked) == 1 and blocked[0]["plugin"] == "safety"
    assert shown["status"] == "completed"


def test_fallback_model_answers_when_the_first_is_refused(tmp_path: Path) -> None:
    policy = scripted_root("```repl\nprint(len(context))\n```", "FINAL(forty-two)")
    config = SimConfig(model_faults={"A": "content_filter"})
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("hello")
    with SimServerThread(config, policy) as sim:
        env = base_env(tmp_path, sim.url)
        proc = cli(
            [
                "ask",
                "q",
                "--context",
                str(ctx),
                "--model",
                "openai/A",
                "--fallback-model",
                "openai/B",
                "--json",
            ],
            env,
        )
        served = [r.model for r in sim.requests if r.status == 200]
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["answer"] == "forty-two" and out["stop_reason"] == "final"
    assert served and set(served) == {"B"}
