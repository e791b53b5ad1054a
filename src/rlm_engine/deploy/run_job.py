"""``rlm databricks deploy --run``: one orchestrator job run, waited for and read back.

The run is started with ``run_now`` and polled with ``runs/get`` under a backoff that
starts short (a quick run is seen quickly) and grows to a few seconds (a long one costs
few requests), until it terminates or the deadline passes. Its task's output (the logs
the entry point printed, ``--json`` making the last line the result) is then read with
``runs/get-output`` and parsed as the ingestor parses a local run's output.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from rlm_engine.errors import RLMError

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.jobs import Run, RunNowResponse

    from rlm_engine.jobs.triggers import TriggerResult

TERMINAL_STATES = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
FIRST_POLL_S = 0.2
MAX_POLL_S = 5.0


class JobRunTimeout(RLMError):
    """The run did not end before the deadline; it goes on in the workspace."""


@dataclass(frozen=True, slots=True)
class JobRunOutcome:
    """How one job run ended: its states, its page, its output and the parsed result."""

    run_id: int
    page_url: str
    life_cycle_state: str
    result_state: str
    state_message: str
    logs: str
    result: TriggerResult

    @property
    def succeeded(self) -> bool:
        return self.result_state == "SUCCESS" and self.result.status == "completed"


def _states(run: Run) -> tuple[str, str, str]:
    state = run.state
    if state is None:
        return "", "", ""
    life = state.life_cycle_state.value if state.life_cycle_state else ""
    result = state.result_state.value if state.result_state else ""
    return life, result, state.state_message or ""


def run_and_wait(
    w: WorkspaceClient,
    job_id: int,
    parameters: Mapping[str, str],
    *,
    timeout_s: float,
    on_state: Callable[[str], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> JobRunOutcome:
    """Start job ``job_id`` with ``parameters`` and wait for its end (``on_state`` is told
    each new life-cycle state)."""
    from rlm_engine.jobs.triggers import parse_result

    started = w.jobs.run_now(job_id, job_parameters=dict(parameters))
    response = cast("RunNowResponse", cast(Any, started).response)
    if response.run_id is None:
        raise RLMError(f"run-now of job {job_id} returned no run id")
    run_id = response.run_id
    deadline = clock() + timeout_s
    delay, seen = FIRST_POLL_S, ""
    while True:
        run = w.jobs.get_run(run_id)
        life, result, message = _states(run)
        if life != seen:
            seen = life
            on_state(life)
        if life in TERMINAL_STATES:
            break
        if clock() >= deadline:
            raise JobRunTimeout(
                f"job run {run_id} had not ended after {timeout_s:g} s (state {life})",
                hint=f"it goes on in the workspace: {run.run_page_url or 'see the job runs'}; "
                "wait longer with --timeout S",
            )
        sleep(delay)
        delay = min(delay * 2, MAX_POLL_S)
    logs, error = _task_output(w, run)
    returncode = 0 if result == "SUCCESS" else 1
    parsed = parse_result(returncode, logs, error or message)
    return JobRunOutcome(
        run_id, run.run_page_url or "", life, result, message or error, logs, parsed
    )


def _task_output(w: WorkspaceClient, run: Run) -> tuple[str, str]:
    """(the logs, the error) of the run's task: get-output answers per task run."""
    tasks = run.tasks or []
    task_run = tasks[0].run_id if tasks and tasks[0].run_id is not None else run.run_id
    if task_run is None:
        return "", ""
    output = w.jobs.get_run_output(task_run)
    error = " ".join(part for part in (output.error, output.error_trace) if part)
    return output.logs or "", error
