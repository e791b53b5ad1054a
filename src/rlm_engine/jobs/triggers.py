"""Triggers: how the ingestor starts one orchestrator run per task.

`LocalTrigger` runs ``python -m rlm_engine.jobs.orchestrator ... --json`` as a subprocess
and reads the JSON object it prints. The subprocess inherits the ingestor's own environment
(provider keys come from there, never from a task row). The Databricks trigger (the Jobs
API's run-now) is another implementation of the same `Trigger` protocol.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

TriggerStatus = Literal["completed", "failed", "lost"]
"""`lost`: the run's end is unknown (the process died or was stopped before it printed its
result); the task is triggered again later, and the orchestrator resumes that run."""

EXIT_INTERRUPTED = 130
ARGV_PROMPT_LIMIT = 64 * 1024
"""Longer prompts go through a file: one argv string may not pass 128 KiB on Linux."""


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One orchestrator run for one task."""

    prompt: str
    session_id: str
    dedupe_key: str
    context: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class TriggerResult:
    status: TriggerStatus
    run_id: str | None = None
    answer: str = ""
    error: str = ""
    data: Mapping[str, Any] = field(default_factory=dict[str, Any])


class Trigger(Protocol):
    def run(self, request: RunRequest) -> TriggerResult:
        """Start the run and wait for its end (thread-safe: called from worker threads)."""
        ...

    def stop(self) -> None:
        """Ask the runs in flight to stop (they stay resumable); returns at once."""
        ...


class LocalTrigger:
    """Orchestrator subprocesses. ``job_args`` are the job settings flags (lakehouse,
    catalog, schema, user id, ...) and ``extra_args`` the model and budget flags, passed to
    every run; a task's own model replaces ``--model``."""

    def __init__(
        self,
        *,
        job_args: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        model: str | None = None,
        prompt_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        argv0: Sequence[str] | None = None,
    ) -> None:
        self.job_args = tuple(job_args)
        self.extra_args = tuple(extra_args)
        self.model = model
        self.prompt_dir = prompt_dir
        self.environ = dict(os.environ if environ is None else environ)
        self.argv0 = tuple(argv0 or (sys.executable, "-m", "rlm_engine.jobs.orchestrator"))
        self._procs: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self._stopping = False

    def argv(self, request: RunRequest) -> list[str]:
        """The orchestrator's command line. Task values go as ``--flag=value``, so a prompt
        that starts with a dash is never read as a flag."""
        args = [*self.argv0, *self.job_args]
        if len(request.prompt.encode()) > ARGV_PROMPT_LIMIT and self.prompt_dir is not None:
            self.prompt_dir.mkdir(parents=True, exist_ok=True)
            path = self.prompt_dir / f"{request.session_id}.txt"
            path.write_text(request.prompt, encoding="utf-8")
            args.append(f"--prompt-file={path}")
        else:
            args.append(f"--prompt={request.prompt}")
        args += [f"--session-id={request.session_id}", f"--dedupe-key={request.dedupe_key}"]
        if request.context:
            args.append(f"--context={request.context}")
        args += self.extra_args
        model = request.model or self.model
        if model:  # after the flags passed through: the task's model wins (argparse: last)
            args.append(f"--model={model}")
        return [*args, "--json"]

    def run(self, request: RunRequest) -> TriggerResult:
        with self._lock:
            if self._stopping:
                return TriggerResult("lost", error="the ingestor is stopping")
            proc = subprocess.Popen(
                self.argv(request),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                env=self.environ,
            )
            self._procs.add(proc)
        try:
            out, err = proc.communicate()
        finally:
            with self._lock:
                self._procs.discard(proc)
        return parse_result(proc.returncode, out, err)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)


def parse_result(returncode: int, stdout: str, stderr: str) -> TriggerResult:
    """The run's outcome from the orchestrator's exit status and its JSON line: a result,
    an error object (``{"error": {...}, "exit_code": N}``), or nothing (it died)."""
    data = _last_json(stdout)
    if data is None:
        tail = _tail(stderr) or f"exit status {returncode}"
        return TriggerResult("lost", error=f"the orchestrator ended without a result: {tail}")
    run_id = str(data["run_id"]) if data.get("run_id") else None
    exit_code = data.get("exit_code", returncode)
    if exit_code == EXIT_INTERRUPTED or returncode in (EXIT_INTERRUPTED, -signal.SIGTERM):
        return TriggerResult("lost", run_id, error="the run was interrupted", data=data)
    error = data.get("error")
    if isinstance(error, dict):
        err = cast(dict[str, Any], error)
        hint = str(err.get("hint") or "")
        text = f"{err.get('type')}: {err.get('message')}" + (f" (hint: {hint})" if hint else "")
        return TriggerResult("failed", run_id, error=text, data=data)
    answer = str(data.get("answer") or "")
    if exit_code == 0:
        return TriggerResult("completed", run_id, answer, data=data)
    detail = str(data.get("stop_detail") or "no answer")
    hint = str(data.get("hint") or "")
    text = f"{data.get('stop_reason')}: {detail}" + (f" (hint: {hint})" if hint else "")
    return TriggerResult("failed", run_id, answer, text, data)


def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return cast(dict[str, Any], value)
    return None


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


class DatabricksTrigger:
    """Runs of the orchestrator job: ``run_now`` with the task as the job's parameters
    (``RLM_PROMPT``, ``RLM_SESSION_ID``, ``RLM_DEDUPE_KEY``, and ``RLM_CONTEXT`` /
    ``RLM_MODEL`` when the task has them: `deploy.bundle.ORCHESTRATOR_RUN_PARAMETERS`),
    waited for with backoff; the outcome is the JSON line the orchestrator printed, read
    from the run's output (`parse_result`). The bundle's orchestrator task maps them to its
    flags (``--prompt={{job.parameters.RLM_PROMPT}}`` ...) and ``--json``.
    `stop` cancels the runs in flight; they are resumed when the task is triggered again."""

    def __init__(
        self,
        client: WorkspaceClient,
        job_id: int,
        *,
        model: str | None = None,
        deadline_s: float = 24 * 3600.0,
        first_poll_s: float | None = None,
        max_poll_s: float | None = None,
    ) -> None:
        from rlm_engine.jobs import remote_executor

        self.client = client
        self.job_id = job_id
        self.model = model
        self.deadline_s = deadline_s
        self.first_poll_s = first_poll_s or remote_executor.FIRST_POLL_S
        self.max_poll_s = max_poll_s or remote_executor.MAX_POLL_S
        self._stop = threading.Event()

    def parameters(self, request: RunRequest) -> dict[str, str]:
        """The task as the orchestrator job's own parameters (the bundle's names)."""
        from rlm_engine.deploy.bundle import ORCHESTRATOR_RUN_PARAMETERS as NAMES

        params = {
            NAMES["prompt"]: request.prompt,
            NAMES["session_id"]: request.session_id,
            NAMES["dedupe_key"]: request.dedupe_key,
        }
        if request.context:
            params[NAMES["context"]] = request.context
        model = request.model or self.model
        if model:
            params[NAMES["model"]] = model
        return params

    def run(self, request: RunRequest) -> TriggerResult:
        from rlm_engine.errors import RLMError
        from rlm_engine.jobs.remote_executor import run_log, start_run, wait_for_run

        if self._stop.is_set():
            return TriggerResult("lost", error="the ingestor is stopping")
        try:
            run_id = start_run(self.client, self.job_id, self.parameters(request))
        except RLMError as exc:
            return TriggerResult("lost", error=str(exc))
        end = wait_for_run(
            self.client,
            run_id,
            deadline_s=self.deadline_s,
            stop=self._stop,
            first_poll_s=self.first_poll_s,
            max_poll_s=self.max_poll_s,
        )
        log = run_log(self.client, run_id)
        where = {"databricks_run_id": run_id, "run_page_url": end.url}
        if end.state is None:
            return TriggerResult("lost", error=end.message, data=where)
        returncode = 0 if end.succeeded else 1
        result = parse_result(returncode, log, end.message)
        return TriggerResult(
            result.status, result.run_id, result.answer, result.error, {**result.data, **where}
        )

    def stop(self) -> None:
        self._stop.set()  # each waiting run cancels its job run at its next poll
