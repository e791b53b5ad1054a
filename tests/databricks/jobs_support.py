"""A workspace for the jobs' Databricks mode: the double, the simulator behind its serving
endpoint, and the executor and orchestrator jobs wired to the project's entry points."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from databricks_double import DatabricksDouble

from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread

CATALOG = "main"
SCHEMA = "rlm"
ENDPOINT = "rlm-sim"
MODEL = f"databricks/{ENDPOINT}"
CANARY = "canary-5f0c1e9b7d2a4e63"
SCOPE = "rlm-secrets"
EXECUTOR = [sys.executable, "-m", "rlm_engine.jobs.executor"]
ORCHESTRATOR = [sys.executable, "-m", "rlm_engine.jobs.orchestrator"]
INGESTOR = [sys.executable, "-m", "rlm_engine.jobs.ingestor"]
VOLUME = f"/Volumes/{CATALOG}/{SCHEMA}/artifacts"


def is_root(messages: list[dict[str, Any]]) -> bool:
    return bool(messages) and message_text(messages[0]).startswith("You answer a question")


def turn(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m.get("role") == "assistant")


def executor_argv(params: dict[str, str]) -> list[str]:
    """The executor job's wheel task, as the bundle maps its job parameters."""
    return [
        *EXECUTOR,
        "--mode",
        "databricks",
        "--artifact-id",
        params["artifact_id"],
        "--catalog",
        params["catalog"],
        "--schema",
        params["schema"],
    ]


def orchestrator_argv_for(executor_job_id: int) -> Callable[[dict[str, str]], list[str]]:
    """The orchestrator job's wheel task: the task's parameters as flags, and --json."""

    def argv(params: dict[str, str]) -> list[str]:
        args = [
            *ORCHESTRATOR,
            "--mode=databricks",
            f"--catalog={CATALOG}",
            f"--schema={SCHEMA}",
            f"--executor-job-id={executor_job_id}",
            f"--prompt={params['RLM_PROMPT']}",
            f"--session-id={params['RLM_SESSION_ID']}",
            f"--dedupe-key={params['RLM_DEDUPE_KEY']}",
            f"--model={params.get('RLM_MODEL') or MODEL}",
            f"--context={params.get('RLM_CONTEXT', '')}",
            "--json",
        ]
        return args

    return argv


@dataclass
class Workspace:
    double: DatabricksDouble
    executor_job_id: int
    orchestrator_job_id: int
    env: dict[str, str]
    """For a job started by the test: the double's host and token, a fresh RLM_HOME."""

    def runs_of(self, job_id: int) -> list[Any]:
        return [r for r in self.double.runs.values() if r.job_id == job_id]


def clean_env(tmp_path: Path, name: str) -> dict[str, str]:
    drop = ("OPENAI", "RLM_", "ADK_", "DATABRICKS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["RLM_HOME"] = str(tmp_path / name)
    return env


@contextlib.contextmanager
def workspace(
    tmp_path: Path, policy: Callable[[list[dict[str, Any]]], str]
) -> Generator[Workspace]:
    """The simulator answering through the double's serving endpoint ``rlm-sim``, the
    executor and orchestrator jobs, and the canary in the secret scope."""
    with (
        SimServerThread(SimConfig(), CallablePolicy(policy)) as sim,
        DatabricksDouble(tmp_path / "workspace", serving_base_url=sim.url) as double,
    ):
        double.add_serving_endpoint(ENDPOINT)
        double.secrets[SCOPE] = {"RLM_CANARY_TOKEN": CANARY}
        job_env = {"RLM_REQUEST_TIMEOUT": "60"}
        executor = double.add_job("rlm-executor", executor_argv, job_env)
        orchestrator = double.add_job("rlm-orchestrator", orchestrator_argv_for(executor), job_env)
        env = clean_env(tmp_path, "home")
        env.update(DATABRICKS_HOST=double.url, DATABRICKS_TOKEN=double.token)
        yield Workspace(double, executor, orchestrator, env)


class OneSubCallThenFinal:
    """Root turn 0: a cell whose sub-call goes through serving and whose answer is kept in
    a variable; turn 1: FINAL from that variable (the second artifact restores the first's
    namespace). Sub-calls answer ``SUB:<prompt>``."""

    def __init__(self, cell: str | None = None) -> None:
        self.lock = threading.Lock()
        self.root_requests = 0
        self.sub_prompts: list[str] = []
        self.cell = cell or "reply = llm_query('twenty-one doubled?')\nprint(reply)"

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        if not is_root(messages):
            prompt = message_text(messages[-1])
            with self.lock:
                self.sub_prompts.append(prompt)
            return "42" if "doubled" in prompt else f"SUB:{prompt}"
        with self.lock:
            self.root_requests += 1
        if turn(messages) == 0:
            return f"```repl\n{self.cell}\n```"
        return "```repl\nFINAL(reply)\n```"
