"""`rlm ask` acceptance for plugins and fallback, through the simulator on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli_support import cli, cli_env, turn

from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy
from rlm_engine.sim.runner import SimServerThread


def scripted_root(*replies: str) -> CallablePolicy:
    def policy(messages: list[dict[str, Any]]) -> str:
        return replies[min(turn(messages), len(replies) - 1)]

    return CallablePolicy(policy)


def test_destructive_cell_is_blocked_recorded_and_the_run_finishes(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    policy = scripted_root(
        f"```repl\nimport shutil, os\nos.system('rm -rf {target}')\n```",
        "The command was blocked; I will answer without it.\nFINAL(kept)",
    )
    with SimServerThread(SimConfig(), policy) as sim:
        env = cli_env(tmp_path, sim.url)
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
        env = cli_env(tmp_path, sim.url)
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


def test_entry_points_are_read_only_when_a_plugin_is_named(monkeypatch: Any) -> None:
    from rlm_engine.plugins.base import Plugin
    from rlm_engine.service import build
    from rlm_engine.service.spec import RunSpec
    from rlm_engine.settings import Settings

    looked_up: list[list[str]] = []

    def load(names: Any) -> list[Plugin]:
        looked_up.append(list(names))
        return []

    monkeypatch.setattr(build, "load_entry_point_plugins", load)
    settings = Settings.from_env({})
    build.plugins_for(RunSpec(model="m", no_default_plugins=True), settings)
    assert looked_up == []
    build.plugins_for(RunSpec(model="m", plugins=("mine",), no_default_plugins=True), settings)
    assert looked_up == [["mine"]]
