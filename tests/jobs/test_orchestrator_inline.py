"""`rlm-orchestrator --executor inline`: cells in the orchestrator's own sandbox, and the
session state that runs in one session share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator_support import job_env, lakehouse, orchestrate, table_rows, turn

from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy
from rlm_engine.sim.runner import SimServerThread


def test_runs_in_a_session_count_its_iterations_and_inline_cells_stay_out_of_the_registry(
    tmp_path: Path,
) -> None:
    replies = ["```repl\nx = 6 * 7\nprint(x)\n```", "```repl\nFINAL(str(x))\n```"]

    def policy(messages: list[dict[str, Any]]) -> str:
        return replies[min(turn(messages), 1)]

    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = job_env(tmp_path, sim.url)
        for prompt in ("first", "second"):
            done = orchestrate(
                ["--prompt", prompt, "--model", "openai/m", "--executor", "inline", "--json"], env
            )
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["answer"] == "42"

    root = lakehouse(tmp_path)
    (session,) = table_rows(root, "sessions")
    assert session["session_id"] == "session_001" and session["user_id"] == "job_user"
    assert json.loads(session["state_json"])["rlm:iteration"] == 4
    assert {r["status"] for r in table_rows(root, "runs")} == {"completed"}
    assert len(table_rows(root, "runs")) == 2
    assert table_rows(root, "artifact_registry") == []


def test_the_iteration_limit_comes_from_rlm_max_iterations_and_no_answer_exits_3(
    tmp_path: Path,
) -> None:
    def policy(messages: list[dict[str, Any]]) -> str:
        return "```repl\nprint('still looking')\n```"

    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = {**job_env(tmp_path, sim.url), "RLM_MAX_ITERATIONS": "1", "ADK_MAX_ITERATIONS": "5"}
        args = ["--prompt", "q", "--model", "openai/m", "--executor", "inline", "--json"]
        done = orchestrate(args, env)
    assert done.returncode == 3, done.stderr
    out = json.loads(done.stdout)
    assert (out["stop_reason"], out["iterations"], out["exit_code"]) == ("max_iterations", 1, 3)
    (row,) = table_rows(lakehouse(tmp_path), "runs")
    assert (row["run_id"], row["stop_reason"], row["iterations"]) == (
        out["run_id"],
        "max_iterations",
        1,
    )
