"""The Jobs API of the Databricks double: jobs as settings, runs as local subprocesses.

Each job has one task (its ``task_key`` comes from the settings, or ``main``). A run gets two
ids, as on a workspace: the job run's ``run_id`` and its task run's; ``runs/get-output`` answers
only for the task run, the way a workspace does for multi-task-format jobs.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from databricks_double_http import (
    ApiError,
    Request,
    Response,
    Route,
    as_array,
    as_object,
    invalid,
    json_response,
    route,
)

ArgvFor = Callable[[dict[str, str]], list[str]]

_PREFIX = r"/api/2\.[12]/jobs"
_LOG_LIMIT = 5 * 1024 * 1024
_RUN_TIMEOUT_S = 600.0
_USER = "tester@example.com"


@dataclass
class JobRun:
    """One run's record: mutable while it runs, then final (read by tests under no lock)."""

    run_id: int
    task_run_id: int
    job_id: int
    number_in_job: int
    params: dict[str, str]
    argv: list[str] = field(default_factory=lambda: list[str]())
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = "Waiting for cluster"
    returncode: int | None = None
    log: str = ""
    start_time: int = 0
    end_time: int = 0
    cancelled: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def terminated(self) -> bool:
        return self.life_cycle_state in ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")


@dataclass
class _Job:
    job_id: int
    created_time: int
    settings: dict[str, Any]
    argv_for: ArgvFor | None = None
    env: dict[str, str] = field(default_factory=lambda: dict[str, str]())


def _now_ms() -> int:
    return int(time.time() * 1000)


class JobsService:
    """State and handlers of ``/api/2.x/jobs/...``."""

    def __init__(self, workspace: Callable[[], tuple[str, str]], root: Path) -> None:
        self._workspace = workspace  # -> (url, token) of the running double
        self._root = root
        self._lock = threading.Lock()
        self._ids = iter(range(1001, 10**9))
        self._jobs: dict[int, _Job] = {}
        self.runs: dict[int, JobRun] = {}
        self._task_runs: dict[int, int] = {}  # task run id -> job run id
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._released = threading.Event()  # cleared: new runs stay PENDING (a cluster starting)
        self._released.set()

    # -- direct set-up from tests -----------------------------------------------------------

    def add_job(
        self,
        name: str,
        argv_for: ArgvFor,
        env: Mapping[str, str] | None,
        parameters: Mapping[str, str],
    ) -> int:
        settings: dict[str, Any] = {
            "name": name,
            "max_concurrent_runs": 100,
            "tasks": [
                {
                    "task_key": "main",
                    "python_wheel_task": {"package_name": "rlm_engine", "entry_point": name},
                }
            ],
            "parameters": [{"name": k, "default": v} for k, v in parameters.items()],
        }
        job_id = self._create(settings)
        self.attach_command(job_id, argv_for, env)
        return job_id

    def attach_command(self, job_id: int, argv_for: ArgvFor, env: Mapping[str, str] | None) -> None:
        with self._lock:
            job = self._job(job_id)
            job.argv_for = argv_for
            job.env = dict(env or {})

    def job_list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._job_json(job) for job in self._jobs.values()]

    def hold_runs(self) -> None:
        self._released.clear()

    def release_runs(self) -> None:
        self._released.set()

    def wait_idle(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise TimeoutError(f"job runs still active after {timeout_s} s")

    def shutdown(self) -> None:
        with self._lock:
            self._closing = True
            self._released.set()
            processes = [r.process for r in self.runs.values() if r.process is not None]
        for process in processes:
            _signal_group(process, signal.SIGKILL)
        for thread in list(self._threads):
            thread.join(timeout=10)

    # -- routes ---------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            route("POST", f"{_PREFIX}/create", self._h_create),
            route("GET", f"{_PREFIX}/get", self._h_get),
            route("GET", f"{_PREFIX}/list", self._h_list),
            route("POST", f"{_PREFIX}/reset", self._h_reset),
            route("POST", f"{_PREFIX}/update", self._h_update),
            route("POST", f"{_PREFIX}/delete", self._h_delete),
            route("POST", f"{_PREFIX}/run-now", self._h_run_now),
            route("GET", f"{_PREFIX}/runs/get", self._h_run_get),
            route("GET", f"{_PREFIX}/runs/get-output", self._h_run_output),
            route("GET", f"{_PREFIX}/runs/list", self._h_run_list),
            route("POST", f"{_PREFIX}/runs/cancel", self._h_run_cancel),
        ]

    def _h_create(self, request: Request, _: re.Match[str]) -> Response:
        settings = request.json()
        if not settings.get("name"):
            settings["name"] = "Untitled"
        return json_response({"job_id": self._create(settings)})

    def _h_get(self, request: Request, _: re.Match[str]) -> Response:
        job_id = _int_param(request.query, "job_id")
        with self._lock:
            return json_response(self._job_json(self._job(job_id)))

    def _h_list(self, request: Request, _: re.Match[str]) -> Response:
        name = request.query.get("name")
        expand = request.query.get("expand_tasks", "").lower() == "true"
        with self._lock:
            found = [
                job
                for job in self._jobs.values()
                if name is None or job.settings.get("name", "").lower() == name.lower()
            ]
            listed: list[dict[str, Any]] = []
            for job in found:
                entry = self._job_json(job)
                if not expand:
                    entry["settings"] = {
                        k: v
                        for k, v in entry["settings"].items()
                        if k not in ("tasks", "parameters")
                    }
                listed.append(entry)
        payload: dict[str, Any] = {"has_more": False}
        if listed:
            payload["jobs"] = listed
        return json_response(payload)

    def _h_reset(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json()
        job_id = _int_field(body, "job_id")
        new_settings = as_object(body.get("new_settings"), "new_settings")
        if not new_settings:
            raise invalid("new_settings is required")
        with self._lock:
            self._job(job_id).settings = copy.deepcopy(new_settings)
        return json_response({})

    def _h_update(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json()
        job_id = _int_field(body, "job_id")
        with self._lock:
            job = self._job(job_id)
            for key, value in as_object(body.get("new_settings"), "new_settings").items():
                job.settings[key] = copy.deepcopy(value)
            for key in as_array(body.get("fields_to_remove"), "fields_to_remove"):
                job.settings.pop(str(key), None)
        return json_response({})

    def _h_delete(self, request: Request, _: re.Match[str]) -> Response:
        job_id = _int_field(request.json(), "job_id")
        with self._lock:
            self._job(job_id)
            del self._jobs[job_id]
        return json_response({})

    def _h_run_now(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json()
        job_id = _int_field(body, "job_id")
        overrides = as_object(body.get("job_parameters"), "job_parameters")
        with self._lock:
            if self._closing:
                raise ApiError(400, "INVALID_STATE", "the workspace is shutting down")
            job = self._job(job_id)
            params = {
                p["name"]: str(p.get("default", "")) for p in job.settings.get("parameters", [])
            }
            params.update({str(k): str(v) for k, v in overrides.items()})
            number = 1 + sum(1 for r in self.runs.values() if r.job_id == job_id)
            run = JobRun(next(self._ids), next(self._ids), job_id, number, params)
            run.start_time = _now_ms()
            self.runs[run.run_id] = run
            self._task_runs[run.task_run_id] = run.run_id
            argv_for, env = job.argv_for, dict(job.env)
        thread = threading.Thread(
            target=self._execute,
            args=(run, argv_for, env),
            name=f"job-run-{run.run_id}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()
        return json_response({"run_id": run.run_id, "number_in_job": number})

    def _h_run_get(self, request: Request, _: re.Match[str]) -> Response:
        run_id = _int_param(request.query, "run_id")
        with self._lock:
            return json_response(self._run_json(self._run(run_id)))

    def _h_run_output(self, request: Request, _: re.Match[str]) -> Response:
        run_id = _int_param(request.query, "run_id")
        with self._lock:
            if run_id in self.runs:
                raise invalid(
                    "Retrieving the output for a run with multiple tasks is not supported. "
                    "Please retrieve the output of each individual task run instead."
                )
            if run_id not in self._task_runs:
                raise invalid(f"Run {run_id} does not exist.")
            run = self.runs[self._task_runs[run_id]]
            payload: dict[str, Any] = {"metadata": self._task_json(run, with_job=True)}
            if run.terminated:
                payload["logs"] = run.log[-_LOG_LIMIT:]
                payload["logs_truncated"] = len(run.log) > _LOG_LIMIT
                if run.result_state == "FAILED":
                    payload["error"] = run.state_message
                    payload["error_trace"] = run.log[-4000:]
        return json_response(payload)

    def _h_run_list(self, request: Request, _: re.Match[str]) -> Response:
        query = request.query
        job_id = int(query["job_id"]) if query.get("job_id") else None
        active_only = query.get("active_only", "").lower() == "true"
        completed_only = query.get("completed_only", "").lower() == "true"
        with self._lock:
            runs = [
                self._run_json(run)
                for run in sorted(self.runs.values(), key=lambda r: -r.run_id)
                if (job_id is None or run.job_id == job_id)
                and not (active_only and run.terminated)
                and not (completed_only and not run.terminated)
            ]
        payload: dict[str, Any] = {"has_more": False}
        if runs:
            payload["runs"] = runs
        return json_response(payload)

    def _h_run_cancel(self, request: Request, _: re.Match[str]) -> Response:
        run_id = _int_field(request.json(), "run_id")
        with self._lock:
            run = self._run(run_id)
            run.cancelled = True
            process = run.process
        if process is not None:
            _signal_group(process, signal.SIGTERM)
        return json_response({})

    # -- runs -----------------------------------------------------------------------------

    def _execute(self, run: JobRun, argv_for: ArgvFor | None, extra_env: dict[str, str]) -> None:
        self._released.wait()
        if argv_for is None:
            self._finish(
                run, 0, "no local command is attached to this job; the run is recorded only\n"
            )
            return
        try:
            argv = [str(a) for a in argv_for(dict(run.params))]
        except Exception as error:  # the test's own argv_for failed: say so in the run
            self._finish(run, None, f"argv_for raised {error!r}\n", internal=True)
            return
        run_dir = self._root / "runs" / str(run.run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        url, token = self._workspace()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(run_dir),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            **extra_env,
            "DATABRICKS_HOST": url,
            "DATABRICKS_TOKEN": token,
        }
        with self._lock:
            run.argv = argv
            if run.cancelled or self._closing:
                cancelled = True
            else:
                cancelled = False
                run.process = subprocess.Popen(  # its own group: cancel ends its children too
                    argv,
                    cwd=run_dir,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                run.life_cycle_state = "RUNNING"
                run.state_message = "In run"
        if cancelled:
            self._finish(run, None, "")
            return
        process = run.process
        assert process is not None
        try:
            output, _ = process.communicate(timeout=_RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            output, _ = process.communicate()
        self._finish(run, process.returncode, output.decode("utf-8", "replace"))

    def _finish(
        self, run: JobRun, returncode: int | None, log: str, *, internal: bool = False
    ) -> None:
        with self._lock:
            run.returncode = returncode
            run.log = log
            run.end_time = _now_ms()
            if internal:
                run.life_cycle_state = "INTERNAL_ERROR"
                run.result_state = "FAILED"
                run.state_message = log.strip()
            elif run.cancelled or (self._closing and returncode != 0):
                run.life_cycle_state = "TERMINATED"
                run.result_state = "CANCELED"
                run.state_message = "Run cancelled."
            elif returncode == 0:
                run.life_cycle_state = "TERMINATED"
                run.result_state = "SUCCESS"
                run.state_message = ""
            else:
                run.life_cycle_state = "TERMINATED"
                run.result_state = "FAILED"
                run.state_message = f"Workload failed: the task exited with code {returncode}"

    # -- JSON shapes ----------------------------------------------------------------------

    def _create(self, settings: dict[str, Any]) -> int:
        with self._lock:
            job_id = next(self._ids)
            self._jobs[job_id] = _Job(job_id, _now_ms(), copy.deepcopy(settings))
            return job_id

    def _job(self, job_id: int) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise invalid(f"Job {job_id} does not exist.")
        return job

    def _run(self, run_id: int) -> JobRun:
        run = self.runs.get(run_id)
        if run is None:
            raise invalid(f"Run {run_id} does not exist.")
        return run

    def _job_json(self, job: _Job) -> dict[str, Any]:
        return {
            "job_id": job.job_id,
            "creator_user_name": _USER,
            "run_as_user_name": _USER,
            "created_time": job.created_time,
            "settings": copy.deepcopy(job.settings),
        }

    def _state_json(self, run: JobRun) -> dict[str, Any]:
        state: dict[str, Any] = {
            "life_cycle_state": run.life_cycle_state,
            "state_message": run.state_message,
            "user_cancelled_or_timedout": run.cancelled,
        }
        if run.result_state is not None:
            state["result_state"] = run.result_state
        return state

    def _task_key(self, run: JobRun) -> str:
        job = self._jobs.get(run.job_id)
        tasks = job.settings.get("tasks") if job is not None else None
        if tasks:
            return str(tasks[0].get("task_key", "main"))
        return "main"

    def _task_json(self, run: JobRun, *, with_job: bool = False) -> dict[str, Any]:
        task: dict[str, Any] = {
            "run_id": run.task_run_id,
            "task_key": self._task_key(run),
            "state": self._state_json(run),
            "start_time": run.start_time,
            "attempt_number": 0,
            "run_page_url": self._run_url(run, run.task_run_id),
        }
        if run.terminated:
            task["end_time"] = run.end_time
            task["execution_duration"] = max(0, run.end_time - run.start_time)
        if with_job:
            task["job_id"] = run.job_id
            task["parent_run_id"] = run.run_id
        return task

    def _run_json(self, run: JobRun) -> dict[str, Any]:
        job = self._jobs.get(run.job_id)
        payload: dict[str, Any] = {
            "job_id": run.job_id,
            "run_id": run.run_id,
            "number_in_job": run.number_in_job,
            "original_attempt_run_id": run.run_id,
            "run_name": job.settings.get("name", "") if job is not None else "",
            "creator_user_name": _USER,
            "run_type": "JOB_RUN",
            "trigger": "ONE_TIME",
            "state": self._state_json(run),
            "start_time": run.start_time,
            "run_page_url": self._run_url(run, run.run_id),
            "tasks": [self._task_json(run)],
            "job_parameters": [{"name": k, "value": v} for k, v in sorted(run.params.items())],
        }
        if run.terminated:
            payload["end_time"] = run.end_time
            payload["run_duration"] = max(0, run.end_time - run.start_time)
        return payload

    def _run_url(self, run: JobRun, run_id: int) -> str:
        return f"{self._workspace()[0]}/?o=0#job/{run.job_id}/run/{run_id}"


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    """Signal the run's process group (the task and whatever it started), if still there."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)


def _int_param(query: Mapping[str, str], name: str) -> int:
    value = query.get(name)
    if value is None:
        raise invalid(f"Missing required field: {name}")
    try:
        return int(value)
    except ValueError:
        raise invalid(f"{name} must be an integer, got {value!r}") from None


def _int_field(body: Mapping[str, Any], name: str) -> int:
    value = body.get(name)
    if value is None:
        raise invalid(f"Missing required field: {name}")
    with contextlib.suppress(TypeError, ValueError):
        return int(value)
    raise invalid(f"{name} must be an integer, got {value!r}")
