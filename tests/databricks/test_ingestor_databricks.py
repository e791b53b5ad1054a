"""The ingestor in Databricks mode: one run_now of the orchestrator job per new task (the
double runs the real ``rlm_engine.jobs.orchestrator --mode databricks``), the outcome read
from the run's output, the ingest log in Unity Catalog, and none again after a restart."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

from jobs_support import CANARY, CATALOG, INGESTOR, SCHEMA, Workspace, is_root, turn, workspace

from rlm_engine.sim.policies import message_text

ADD = re.compile(r"add (\d+) and (\d+)")


class Adder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.root_requests = 0

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        assert is_root(messages)
        with self.lock:
            self.root_requests += 1
        if turn(messages) == 0:
            found = ADD.search("\n".join(message_text(m) for m in messages))
            assert found
            return f"```repl\nreply = str({found.group(1)} + {found.group(2)})\n```"
        return "```repl\nFINAL(reply)\n```"


def ingest(ws: Workspace, inbox: Path) -> subprocess.CompletedProcess[str]:
    argv = [
        *INGESTOR,
        "--mode",
        "databricks",
        "--catalog",
        CATALOG,
        "--schema",
        SCHEMA,
        "--orchestrator-job-id",
        str(ws.orchestrator_job_id),
        "--source",
        f"dir:{inbox}",
        "--once",
        "--json",
    ]
    return subprocess.run(
        argv, capture_output=True, text=True, env=ws.env, timeout=170, check=False
    )


def test_each_new_task_is_one_run_of_the_orchestrator_job(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "first.txt").write_text("add 2 and 3")
    (inbox / "second.txt").write_text("add 40 and 2")
    policy = Adder()
    with workspace(tmp_path, policy) as ws:
        done = ingest(ws, inbox)
        assert done.returncode == 0, done.stderr
        reports = {
            r["task_key"].split("@")[0]: r for r in map(json.loads, done.stdout.splitlines())
        }
        assert {k: (r["status"], r["answer"]) for k, r in reports.items()} == {
            "first.txt": ("completed", "5"),
            "second.txt": ("completed", "42"),
        }
        runs = ws.runs_of(ws.orchestrator_job_id)
        assert len(runs) == 2  # once per task
        assert {r.params["RLM_PROMPT"] for r in runs} == {"add 2 and 3", "add 40 and 2"}
        assert all(r.params["RLM_DEDUPE_KEY"] and r.params["RLM_SESSION_ID"] for r in runs)
        assert {r.returncode for r in runs} == {0}
        cells = ws.runs_of(ws.executor_job_id)  # each run's cells as executor job runs
        assert len(cells) >= 4
        sessions = {r.params["RLM_SESSION_ID"] for r in runs}
        assert {c.params["session_id"] for c in cells} == sessions

        # the ingestor and each orchestrator run loaded the scope; no log shows the canary
        assert len(ws.double.requests_to("/api/2.0/secrets/get", "GET")) >= 3
        assert CANARY not in done.stdout + done.stderr
        assert all(CANARY not in r.log for r in ws.double.runs.values())

        again = ingest(ws, inbox)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == ""
        assert len(ws.runs_of(ws.orchestrator_job_id)) == 2  # nothing triggered twice
        assert policy.root_requests == 4


def test_flags_other_than_model_are_refused_in_databricks_mode(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with workspace(tmp_path, Adder()) as ws:
        argv = [
            *INGESTOR,
            "--mode=databricks",
            f"--orchestrator-job-id={ws.orchestrator_job_id}",
            f"--source=dir:{inbox}",
            "--once",
            "--max-depth",
            "2",
        ]
        done = subprocess.run(
            argv, capture_output=True, text=True, env=ws.env, timeout=120, check=False
        )
    assert done.returncode == 2
    assert "passes only --model to the orchestrator job" in done.stderr
    assert "hint:" in done.stderr


ECHO = (
    "import json, sys\n"
    "print('some log line')\n"
    "print(json.dumps({'run_id': 'r-1', 'answer': sys.argv[1], 'exit_code': 0}))\n"
)


def test_the_trigger_passes_the_task_and_reads_the_outcome_from_the_run(tmp_path: Path) -> None:
    import sys

    from databricks.sdk import WorkspaceClient
    from databricks_double import DatabricksDouble

    from rlm_engine.jobs.triggers import DatabricksTrigger, RunRequest

    with DatabricksDouble(tmp_path / "ws") as double:
        echo = double.add_job("echo", lambda p: [sys.executable, "-c", ECHO, p["RLM_PROMPT"]])
        dies = double.add_job("dies", lambda p: [sys.executable, "-c", "raise SystemExit(3)"])
        client = WorkspaceClient(host=double.url, token=double.token)
        request = RunRequest("a -prompt", "s-1", "src:k-1", model="databricks/ep")
        done = DatabricksTrigger(client, echo, first_poll_s=0.05).run(request)
        assert (done.status, done.run_id, done.answer) == ("completed", "r-1", "a -prompt")
        (run,) = [r for r in double.runs.values() if r.job_id == echo]
        assert run.params == {
            "RLM_PROMPT": "a -prompt",
            "RLM_SESSION_ID": "s-1",
            "RLM_DEDUPE_KEY": "src:k-1",
            "RLM_MODEL": "databricks/ep",
        }
        assert done.data["databricks_run_id"] == run.run_id
        lost = DatabricksTrigger(client, dies, first_poll_s=0.05).run(request)
        assert lost.status == "lost"  # no result line: triggered again later (resumed)
        assert "without a result" in lost.error
