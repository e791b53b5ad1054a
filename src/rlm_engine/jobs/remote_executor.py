"""Each artifact run as a Databricks job run of the executor job (Databricks mode).

`RemoteExecutor` is the artifact sandbox's launcher there: the artifact's code is already
in the Volume (the registry wrote it), so it triggers the executor job with ``run_now``
and the job parameters ``artifact_id``, ``catalog``, ``schema`` and ``session_id``, notes
the Databricks run id and run page URL in the artifact's registry row, and waits for the
run with a growing poll interval (runs take seconds to minutes; a fixed fast poll would
hammer the Jobs API). The run's output log becomes the artifact's ``executor.log`` in the
Volume, so the markers can be read when ``result.json`` is missing. A run past the cell's
limit plus the start-up grace (a job cluster may take minutes to start) is cancelled.

`wait_for_run` and `run_log` are shared with the ingestor's `DatabricksTrigger`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlm_engine.errors import RLMError
from rlm_engine.jobs.executor_process import EXECUTOR_LOG, Exit

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.jobs import Run

    from rlm_engine.jobs.artifacts import Artifact, ArtifactRegistry

DEFAULT_STARTUP_GRACE_S = 900.0
"""How long past the cell's limit an executor run may take (cluster start, install)."""
FIRST_POLL_S = 0.25
MAX_POLL_S = 15.0
BACKOFF = 1.5
_TERMINAL = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
RUN_ID_KEY = "databricks_run_id"
RUN_URL_KEY = "run_page_url"


class JobRunError(RLMError):
    """The Jobs API refused to start or report a run."""


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How a job run ended: ``state`` its life cycle state (None: it was cancelled here,
    past its deadline or because the caller stopped), ``result`` its result state."""

    run_id: int
    url: str | None
    state: str | None
    result: str | None
    message: str = ""

    @property
    def succeeded(self) -> bool:
        return self.result in ("SUCCESS", "SUCCESS_WITH_FAILURES")


def _name(value: Any) -> str | None:
    """An SDK enum's value (or None)."""
    return None if value is None else str(getattr(value, "value", value))


def wait_for_run(
    client: WorkspaceClient,
    run_id: int,
    *,
    deadline_s: float,
    stop: threading.Event,
    first_poll_s: float = FIRST_POLL_S,
    max_poll_s: float = MAX_POLL_S,
    clock: Callable[[], float] = time.monotonic,
) -> RunEnd:
    """Poll the run until it ends, with backoff; past ``deadline_s`` or once ``stop`` is
    set, cancel it and return an end with ``state`` None."""
    until = clock() + deadline_s
    delay = first_poll_s
    url: str | None = None
    while True:
        run = client.jobs.get_run(run_id)
        url = run.run_page_url or url
        state = run.state
        life = _name(state.life_cycle_state) if state is not None else None
        if life in _TERMINAL:
            result = _name(state.result_state) if state is not None else None
            message = (state.state_message or "") if state is not None else ""
            return RunEnd(run_id, url, life, result, message)
        left = until - clock()
        if left <= 0 or stop.is_set():
            cancel_run(client, run_id)
            why = "it ran past its deadline" if left <= 0 else "the caller stopped"
            return RunEnd(run_id, url, None, None, f"the run was cancelled: {why}")
        if stop.wait(min(delay, left)):
            continue  # the next turn cancels it
        delay = min(delay * BACKOFF, max_poll_s)


def cancel_run(client: WorkspaceClient, run_id: int) -> None:
    """Ask the Jobs API to cancel the run; a failure is left to the run's own timeout."""
    try:
        client.jobs.cancel_run(run_id)
    except Exception:  # a run that already ended cannot be cancelled: nothing to do
        return


def run_log(client: WorkspaceClient, run_id: int) -> str:
    """The run's output (its task's, for a job of one task) and error text; "" if none."""
    try:
        run = client.jobs.get_run(run_id)
        target = run_id
        tasks = run.tasks or []
        if len(tasks) == 1 and tasks[0].run_id is not None:
            target = tasks[0].run_id
        output = client.jobs.get_run_output(target)
    except Exception as exc:
        return f"(the run's output could not be read: {type(exc).__name__}: {exc})\n"
    parts = [output.logs or ""]
    if output.error:
        parts.append(f"\n{output.error}\n")
    if output.error_trace:
        parts.append(f"{output.error_trace}\n")
    return "".join(parts)


def start_run(client: WorkspaceClient, job_id: int, parameters: Mapping[str, str]) -> int:
    """``run_now`` of the job with its job parameters; the new run's id."""
    try:
        waiter = client.jobs.run_now(job_id=job_id, job_parameters=dict(parameters))
    except Exception as exc:
        raise JobRunError(
            f"could not start a run of job {job_id}: {type(exc).__name__}: {exc}",
            hint="check the job id (rlm databricks check) and that this identity may run it",
        ) from exc
    started: Any = waiter
    return int(started.response.run_id)


class RemoteExecutor:
    """The artifact sandbox's launcher in Databricks mode (an ``ArtifactLauncher``)."""

    def __init__(
        self,
        client: WorkspaceClient,
        job_id: int,
        *,
        catalog: str,
        schema: str,
        session_id: str,
        startup_grace_s: float = DEFAULT_STARTUP_GRACE_S,
        first_poll_s: float = FIRST_POLL_S,
        max_poll_s: float = MAX_POLL_S,
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.catalog = catalog
        self.schema = schema
        self.session_id = session_id
        self.startup_grace_s = startup_grace_s
        self.first_poll_s = first_poll_s
        self.max_poll_s = max_poll_s
        self.runs: list[int] = []

    def parameters(self, artifact_id: str) -> dict[str, str]:
        return {
            "artifact_id": artifact_id,
            "catalog": self.catalog,
            "schema": self.schema,
            "session_id": self.session_id,
        }

    async def launch(self, registry: ArtifactRegistry, artifact_id: str, timeout_s: float) -> Exit:
        """Run the executor job for the artifact and wait; cancelling this cancels the run."""
        stop = threading.Event()
        work = asyncio.ensure_future(
            asyncio.to_thread(self._run, registry, artifact_id, timeout_s, stop)
        )
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()  # the thread cancels the run at its next poll
            raise

    async def adopt(
        self, registry: ArtifactRegistry, artifact: Artifact, timeout_s: float
    ) -> Exit | None:
        """Wait for the job run the row names when it has not ended (the orchestrator that
        started it died); None when there is none or it ended, so the artifact runs again."""
        run_id = artifact.metadata.get(RUN_ID_KEY)
        if not isinstance(run_id, int):
            return None
        stop = threading.Event()
        work = asyncio.ensure_future(
            asyncio.to_thread(self._adopt, registry, artifact.artifact_id, run_id, timeout_s, stop)
        )
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()
            raise

    def _adopt(
        self,
        registry: ArtifactRegistry,
        artifact_id: str,
        run_id: int,
        timeout_s: float,
        stop: threading.Event,
    ) -> Exit | None:
        try:
            run = self.client.jobs.get_run(run_id)
        except Exception:
            return None  # gone from the workspace: run the artifact again
        life = _name(run.state.life_cycle_state) if run.state is not None else None
        if life is None or life in _TERMINAL:
            return None
        return self._wait(registry, artifact_id, run_id, run.run_page_url, timeout_s, stop)

    def _run(
        self, registry: ArtifactRegistry, artifact_id: str, timeout_s: float, stop: threading.Event
    ) -> Exit:
        run_id = start_run(self.client, self.job_id, self.parameters(artifact_id))
        self.runs.append(run_id)
        url = _run_url(self.client, run_id)
        note_run(registry, artifact_id, run_id, url)
        return self._wait(registry, artifact_id, run_id, url, timeout_s, stop)

    def _wait(
        self,
        registry: ArtifactRegistry,
        artifact_id: str,
        run_id: int,
        url: str | None,
        timeout_s: float,
        stop: threading.Event,
    ) -> Exit:
        end = wait_for_run(
            self.client,
            run_id,
            deadline_s=timeout_s + self.startup_grace_s,
            stop=stop,
            first_poll_s=self.first_poll_s,
            max_poll_s=self.max_poll_s,
        )
        log = run_log(self.client, run_id)
        if end.state is None or not end.succeeded:
            log += f"\n[databricks run {run_id}: {end.state or 'cancelled'} {end.result or ''} "
            log += f"{end.message}; {end.url or ''}]\n"
        registry.files.write_bytes(registry.key(artifact_id, EXECUTOR_LOG), log.encode("utf-8"))
        note_run(registry, artifact_id, run_id, end.url or url)
        if end.state is None:
            return Exit(None, killed=True)
        return Exit(0 if end.succeeded else 1, killed=False)


def _run_url(client: WorkspaceClient, run_id: int) -> str | None:
    try:
        run: Run = client.jobs.get_run(run_id)
    except Exception:
        return None
    return run.run_page_url


def note_run(registry: ArtifactRegistry, artifact_id: str, run_id: int, url: str | None) -> None:
    """Put the run's id and page into the artifact's row, keeping its status (the executor
    may have moved it meanwhile: a finished row then takes the note as a restatement)."""
    current = registry.get(artifact_id)
    if current is None:
        return
    meta = current.metadata
    if meta.get(RUN_ID_KEY) == run_id and meta.get(RUN_URL_KEY) == url:
        return
    registry.mark(artifact_id, current.status, metadata={RUN_ID_KEY: run_id, RUN_URL_KEY: url})
