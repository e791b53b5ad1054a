"""`kill -9` of `rlm-orchestrator` in the middle of a run, then the same command again: the
run resumes from its journal, and no artifact that had completed runs a second time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from orchestrator_support import (
    ORCHESTRATOR,
    is_root,
    job_env,
    lakehouse,
    orchestrate,
    table_rows,
    turn,
)

from rlm_engine.jobs import markers
from rlm_engine.jobs.executor_process import EXECUTOR_LOG
from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread

SUB_PROMPT = "name a bird"


CELLS = [
    "```repl\na = 6 * 7\nprint(a)\n```",
    f"```repl\nb = llm_query({SUB_PROMPT!r})\nprint(b)\n```",
    "```repl\nFINAL(f'{a} {b}')\n```",
]
"""Cell 1 completes; cell 2 makes the sub-call the kill happens at; cell 3 reads both
cells' variables, so the resumed run must have cell 1's namespace without running it."""


def executor_starts(root: Path, session_id: str) -> Counter[str]:
    """How many executor processes started on each artifact: each one opens its
    artifact's log with a start marker."""
    starts: Counter[str] = Counter()
    for log in (root / "artifacts" / session_id).glob(f"*/{EXECUTOR_LOG}"):
        artifact_id = log.parent.name
        starts[artifact_id] = log.read_text().count(markers.START.format(id=artifact_id))
    return starts


class KillingPolicy:
    """Root: the three cells in turn. The first arrival of the sub-call SIGKILLs the
    orchestrator (``pid``), so that call is never journaled; later arrivals answer it."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.lock = threading.Lock()
        self.pid: int | None = None
        self.killed = threading.Event()
        self.root_turns: list[int] = []
        self.sub_prompts: list[str] = []

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        with self.lock:
            if is_root(messages):
                self.root_turns.append(turn(messages))
                return self.replies[min(turn(messages), len(self.replies) - 1)]
            self.sub_prompts.append(message_text(messages[-1]))
            if not self.killed.is_set() and self.pid is not None:
                os.kill(self.pid, signal.SIGKILL)
                self.killed.set()
            return "wren"


def test_a_killed_orchestrator_resumes_without_running_a_completed_artifact_again(
    tmp_path: Path,
) -> None:
    policy = KillingPolicy(CELLS)
    args = [
        *("--prompt", "the sum and a bird", "--model", "openai/m"),
        *("--session-id", "s-kill", "--dedupe-key", "tasks:7", "--json"),
    ]
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = job_env(tmp_path, sim.url)
        proc = subprocess.Popen(
            [*ORCHESTRATOR, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        policy.pid = proc.pid
        assert proc.wait(90) == -signal.SIGKILL
        assert policy.killed.is_set()
        assert policy.root_turns == [0, 1] and policy.sub_prompts == [SUB_PROMPT]

        root = lakehouse(tmp_path)
        (before,) = table_rows(root, "runs")
        assert (before["status"], before["dedupe_key"]) == ("running", "tasks:7")
        completed = {
            a["artifact_id"]: a["updated_time"]
            for a in table_rows(root, "artifact_registry")
            if a["status"] == "completed"
        }
        assert completed  # the engine's setup cell and cell 1; cell 2 waited on its sub-call
        starts_before = executor_starts(root, "s-kill")
        assert all(starts_before[artifact_id] == 1 for artifact_id in completed)

        done = orchestrate(args, env)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)

    assert out["answer"] == "42 wren"
    assert (out["run_id"], out["resumed"], out["dedupe_key"]) == (
        before["run_id"],
        True,
        "tasks:7",
    )
    # The journal gave back both root turns made before the kill: only the last is asked;
    # the sub-call the kill interrupted was never journaled, so it is asked once more.
    assert policy.root_turns == [0, 1, 2]
    assert policy.sub_prompts == [SUB_PROMPT, SUB_PROMPT]
    # No completed artifact ran again: one executor start each, its row unchanged.
    starts = executor_starts(root, "s-kill")
    assert all(starts[artifact_id] == 1 for artifact_id in completed), starts
    rows = {a["artifact_id"]: a for a in table_rows(root, "artifact_registry")}
    for artifact_id, updated in completed.items():
        assert rows[artifact_id]["status"] == "completed"
        assert rows[artifact_id]["updated_time"] == updated
    (after,) = table_rows(root, "runs")
    assert (after["status"], after["answer"]) == ("completed", "42 wren")
