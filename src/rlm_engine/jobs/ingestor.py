"""``rlm-ingestor``: poll a task source and trigger one orchestrator run per new task.

Exactly once, across crashes and restarts, rests on three records in the lakehouse:

- ``ingest_log`` has one row per (source, task key): ``pending`` when first seen,
  ``triggered`` (with the attempt counted) just before its orchestrator starts, and
  ``completed`` or ``failed`` once its outcome has been delivered back to the source. A
  task whose row is ``completed`` or ``failed`` is never triggered again.
- ``ingest_state`` holds the source's watermark. It moves past a poll's tasks only when
  every one of them is delivered; until then the next poll yields them again, and the log
  skips those already done.
- Each task's run has a session id derived from (source, task key) and is started with
  ``--dedupe-key <source>:<task key>``: a task triggered again after a crash either
  resumes its interrupted run or gets the finished run's answer, never a second run.

A run whose end is unknown (the orchestrator died, or the ingestor was stopped) is
triggered again on the next poll, up to ``--max-attempts`` times; then it is delivered as
failed. Flags this parser does not know are passed to every orchestrator run (``--model``,
``--max-iterations``, budgets, ...), after a check against the orchestrator's parser.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rlm_engine.errors import ConfigurationError, RLMError
from rlm_engine.jobs.sources import Source, SourceOptions, Task, TaskOutcome, short_hash
from rlm_engine.jobs.triggers import RunRequest, Trigger, TriggerResult

if TYPE_CHECKING:
    from rlm_engine.integrations.tables import TableStore
    from rlm_engine.jobs.settings import JobSettings

TERMINAL = frozenset({"completed", "failed"})
INGEST_TABLES = ("ingest_log", "ingest_state")
RESERVED = ("--prompt", "--prompt-file", "--session-id", "--dedupe-key", "--json", "--context")
"""Set per task by the ingestor, so not accepted as flags to pass through."""
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_POLL_S = 30.0
DEFAULT_MAX_PARALLEL = 2
DEFAULT_MAX_ATTEMPTS = 3
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def session_id_for(source: str, key: str) -> str:
    """``ingest-<source hash>-<task key>``: the same task always gets the same session.
    A key with characters outside ``[A-Za-z0-9._-]`` (or a long one) is shortened to a
    readable part and its digest, so two keys never share a session."""
    safe = _UNSAFE.sub("_", key).strip("_")
    if safe != key or len(safe) > 80:
        safe = f"{safe[:48]}-{short_hash(key, 10)}"
    return f"ingest-{short_hash(source, 8)}-{safe}"


def dedupe_key_for(source: str, key: str) -> str:
    return f"{source}:{key}"


@dataclass(frozen=True, slots=True)
class TaskReport:
    """One task's line of output."""

    key: str
    status: str
    """``completed``, ``failed``, or ``pending`` (its run's end is unknown; retried)."""
    run_id: str | None
    session_id: str
    answer: str = ""
    error: str = ""
    attempts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "task_key": self.key,
            "status": self.status,
            "run_id": self.run_id,
            "session_id": self.session_id,
            "answer": self.answer,
            "error": self.error or None,
            "attempts": self.attempts,
        }

    def line(self) -> str:
        text = f"{self.key}\t{self.run_id or '-'}\t{self.status}"
        return f"{text}\t{self.error}" if self.error else text


class Ingestor:
    """One source, its lakehouse records and a trigger; `poll_once` is one cycle."""

    def __init__(
        self,
        source: Source,
        lake: TableStore,
        trigger: Trigger,
        *,
        max_parallel: int = DEFAULT_MAX_PARALLEL,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        clock: Callable[[], float] = time.time,
        stopping: threading.Event | None = None,
    ) -> None:
        self.source = source
        self.lake = lake
        self.trigger = trigger
        self.max_parallel = max_parallel
        self.max_attempts = max_attempts
        self._clock = clock
        self.stopping = stopping or threading.Event()
        """Set by a signal: no new run starts; those in flight are asked to stop."""
        lake.ensure(*INGEST_TABLES, "results")

    @property
    def name(self) -> str:
        return self.source.name

    def watermark(self) -> str | None:
        rows = self.lake.read("ingest_state", where={"source": self.name})
        return str(rows[0]["watermark"]) if rows and rows[0].get("watermark") else None

    def poll_once(
        self, on_report: Callable[[TaskReport], None] = lambda _: None
    ) -> list[TaskReport]:
        """Poll, trigger what is not done (at most ``max_parallel`` at once), deliver each
        outcome, and move the watermark if the whole batch is delivered."""
        before = self.watermark()
        tasks, after = self.source.poll(before)
        log = {
            str(r["task_key"]): r for r in self.lake.read("ingest_log", where={"source": self.name})
        }
        todo: dict[str, Task] = {}
        for task in tasks:  # one run per key, even if a poll yields a key twice
            if log.get(task.key, {}).get("status") not in TERMINAL:
                todo.setdefault(task.key, task)
        new = [key for key in todo if key not in log]
        if new:
            self._log([{"task_key": key, "status": "pending", "attempts": 0} for key in new])
        reports = self._run_all(list(todo.values()), log, on_report)
        if all(r.status in TERMINAL for r in reports) and after != before:
            self.lake.merge(
                "ingest_state",
                [{"source": self.name, "watermark": after, "updated_time": self._clock()}],
            )
        return reports

    def _run_all(
        self,
        todo: Sequence[Task],
        log: Mapping[str, Mapping[str, Any]],
        on_report: Callable[[TaskReport], None],
    ) -> list[TaskReport]:
        """Start runs from this thread as slots free up, so each ``triggered`` row is
        written just before its run starts and every write to the log is serial."""
        reports: list[TaskReport] = []

        def report(item: TaskReport) -> None:
            reports.append(item)
            on_report(item)

        queue: deque[tuple[Task, int]] = deque()
        for task in todo:
            attempts = int(log.get(task.key, {}).get("attempts") or 0)
            if task.problem or not task.prompt.strip():
                why = task.problem or "the task's prompt is empty"
                report(self._finish(task, TriggerResult("failed", error=why), attempts))
            elif attempts >= self.max_attempts:
                why = f"gave up after {attempts} attempts whose end stayed unknown"
                report(self._finish(task, TriggerResult("failed", error=why), attempts))
            else:
                queue.append((task, attempts + 1))
        running: dict[Future[TriggerResult], tuple[Task, int]] = {}
        with ThreadPoolExecutor(max_workers=self.max_parallel) as pool:
            while queue or running:
                while queue and len(running) < self.max_parallel and not self.stopping.is_set():
                    task, attempts = queue.popleft()
                    self._log([self._triggered_row(task, attempts)])
                    running[pool.submit(self.trigger.run, self._request(task))] = (task, attempts)
                if self.stopping.is_set():
                    for task, attempts in queue:  # never started: no attempt is spent
                        sid = session_id_for(self.name, task.key)
                        report(TaskReport(task.key, "pending", None, sid, attempts=attempts - 1))
                    queue.clear()
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    task, attempts = running.pop(future)
                    report(self._finish(task, future.result(), attempts))
        return reports

    def _triggered_row(self, task: Task, attempts: int) -> dict[str, Any]:
        return {
            "task_key": task.key,
            "session_id": session_id_for(self.name, task.key),
            "status": "triggered",
            "attempts": attempts,
            "triggered_time": self._clock(),
        }

    def _request(self, task: Task) -> RunRequest:
        return RunRequest(
            prompt=task.prompt,
            session_id=session_id_for(self.name, task.key),
            dedupe_key=dedupe_key_for(self.name, task.key),
            context=task.context,
            model=task.model,
        )

    def _finish(self, task: Task, result: TriggerResult, attempts: int) -> TaskReport:
        """Deliver a known outcome, then record it; an unknown one stays ``triggered``."""
        session_id = session_id_for(self.name, task.key)
        if result.status == "lost":
            return TaskReport(
                task.key,
                "pending",
                result.run_id,
                session_id,
                error=result.error,
                attempts=attempts,
            )
        finished = self._clock()
        outcome = TaskOutcome(
            status=result.status,
            run_id=result.run_id,
            session_id=session_id,
            answer=result.answer,
            error=result.error,
            finished_time=finished,
        )
        try:
            self.source.deliver(task, outcome)
        except RLMError as exc:  # e.g. Jira down: the run is done; deliver at the next poll
            why = f"delivering the outcome failed (tried again at the next poll): {exc}"
            return TaskReport(task.key, "pending", result.run_id, session_id, error=why)
        self._log(
            [
                {
                    "task_key": task.key,
                    "session_id": session_id,
                    "status": result.status,
                    "run_id": result.run_id,
                    "attempts": attempts,
                    "finished_time": finished,
                }
            ],
            keep_triggered_time=True,
        )
        return TaskReport(
            task.key,
            result.status,
            result.run_id,
            session_id,
            result.answer,
            result.error,
            attempts,
        )

    def _log(self, rows: Sequence[Mapping[str, Any]], *, keep_triggered_time: bool = False) -> None:
        full = [{"source": self.name, **row} for row in rows]
        if keep_triggered_time:  # a merge replaces whole rows: carry the earlier column over
            for row in full:
                where = {"source": self.name, "task_key": row["task_key"]}
                earlier = self.lake.read("ingest_log", where=where)
                row.setdefault(
                    "triggered_time", earlier[0].get("triggered_time") if earlier else None
                )
        self.lake.merge("ingest_log", full, update_when="t.status NOT IN ('completed', 'failed')")


# -- the console script -------------------------------------------------------------------


def ingestor_parser(prog: str = "rlm-ingestor") -> argparse.ArgumentParser:
    from rlm_engine.cli.commands.flags import Parser, int_at_least, positive_float
    from rlm_engine.jobs.args import add_job_options

    p = Parser(
        prog=prog,
        allow_abbrev=False,
        description="Poll a task source and trigger one orchestrator run per new task, "
        "exactly once (a restart neither drops nor repeats a task). Flags not listed here "
        "(--model, --max-iterations, budgets, ...) are passed to every orchestrator run.",
    )
    p.add_argument(
        "--source",
        required=True,
        metavar="KIND:ARG",
        help="delta:PATH (new rows of a tasks Delta table), jira:JQL (issues a JQL query "
        "matches) or dir:PATH (prompt files in an inbox directory)",
    )
    p.add_argument("--once", action="store_true", help="poll once, finish its tasks and exit")
    p.add_argument(
        "--poll-s",
        type=positive_float("--poll-s"),
        default=DEFAULT_POLL_S,
        metavar="S",
        help="seconds between polls without --once",
    )
    p.add_argument(
        "--max-parallel",
        type=int_at_least("--max-parallel", 1),
        default=DEFAULT_MAX_PARALLEL,
        metavar="N",
        help="orchestrator runs at once",
    )
    p.add_argument(
        "--max-attempts",
        type=int_at_least("--max-attempts", 1),
        default=DEFAULT_MAX_ATTEMPTS,
        metavar="N",
        help="triggers of a task whose run's end stays unknown before it is failed",
    )
    p.add_argument(
        "--results",
        metavar="PATH",
        help="Delta table the answers of a delta: source go to (default: the lakehouse's "
        "results table)",
    )
    jira = p.add_argument_group("jira")
    jira.add_argument(
        "--jira-url",
        metavar="URL",
        help="the Jira site (env RLM_JIRA_URL); the credentials come from RLM_JIRA_USER "
        "and RLM_JIRA_TOKEN only",
    )
    add_job_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per task")
    return p


def check_passed_flags(extra: Sequence[str]) -> None:
    """Refuse flags the orchestrator would refuse, before any task is triggered."""
    from rlm_engine.jobs.args import orchestrator_parser

    for arg in extra:
        if arg.split("=", 1)[0] in RESERVED:
            raise ConfigurationError(
                f"{arg.split('=', 1)[0]} is set by the ingestor for each task",
                hint="give the prompt, context and model in the task itself",
            )
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            orchestrator_parser().parse_args([*extra, "--prompt", "check"])
    except SystemExit as exc:
        if exc.code not in (0, None):
            lines = [line for line in err.getvalue().splitlines() if line.strip()]
            detail = lines[-1] if lines else "invalid arguments"
            raise ConfigurationError(
                f"the flags passed to the orchestrator are not valid: {detail}",
                hint="see rlm-orchestrator --help; the ingestor's own flags are in "
                "rlm-ingestor --help",
            ) from None


def job_args(job: JobSettings) -> list[str]:
    """The job settings every orchestrator run gets, resolved once here."""
    args = ["--mode", job.mode, "--lakehouse", job.lakehouse_root, "--user-id", job.user_id]
    args += ["--catalog", job.catalog, "--schema", job.schema]
    if job.executor_job_id:
        args += ["--executor-job-id", job.executor_job_id]
    if job.orchestrator_job_id:
        args += ["--orchestrator-job-id", job.orchestrator_job_id]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """The ``rlm-ingestor`` console script."""
    args, extra = ingestor_parser().parse_known_args(argv)
    as_json = bool(args.json)
    try:
        return _main(args, extra)
    except ConfigurationError as exc:
        _report_error(exc, as_json)
        return EXIT_USAGE
    except RLMError as exc:
        _report_error(exc, as_json)
        return EXIT_FAILED
    except OSError as exc:  # the inbox, a results folder, the orchestrator's interpreter
        where = f": {exc.filename}" if exc.filename else ""
        error = ConfigurationError(
            f"{exc.strerror or exc}{where}",
            hint="check that the path exists and that you may read and write it",
        )
        _report_error(error, as_json)
        return EXIT_FAILED


def _main(args: argparse.Namespace, extra: list[str]) -> int:
    from rlm_engine.jobs.settings import JobSettings
    from rlm_engine.jobs.sources import open_source
    from rlm_engine.jobs.triggers import LocalTrigger

    job = JobSettings.from_env(dict(os.environ)).with_flags(args)
    check_passed_flags(extra)
    trigger: Trigger
    if job.mode == "databricks":
        from rlm_engine.jobs import databricks_mode

        client = databricks_mode.workspace(job)
        databricks_mode.load_job_secrets(client, job.secret_scope)  # the Jira token, ...
        lake = databricks_mode.tables(client, job.catalog, job.schema)
        model = databricks_mode.passed_model(extra)
        trigger = databricks_mode.trigger(job, client, model=model)
    else:
        job.require_local()
        lake = job.lake()
        trigger = LocalTrigger(
            job_args=job_args(job),
            extra_args=extra,
            prompt_dir=Path(job.home) / "ingest" / "prompts",
            environ=dict(os.environ),
        )
    env = dict(os.environ)
    options = SourceOptions(
        results=args.results,
        lakehouse_root=job.lakehouse_root,
        jira_url=args.jira_url or env.get("RLM_JIRA_URL") or None,
        jira_user=env.get("RLM_JIRA_USER") or None,
        jira_token=env.get("RLM_JIRA_TOKEN") or None,
    )
    source = open_source(args.source, options)
    stop = threading.Event()
    ingestor = Ingestor(
        source,
        lake,
        trigger,
        max_parallel=args.max_parallel,
        max_attempts=args.max_attempts,
        stopping=stop,
    )
    printer = _printer(bool(args.json))
    with _graceful(stop, trigger):
        if args.once:
            reports = ingestor.poll_once(printer)
            if not reports and not args.json:  # say so: silence reads as a hang or a no-op
                print(f"no new tasks in {args.source}", file=sys.stderr)
            return EXIT_OK if all(r.status == "completed" for r in reports) else EXIT_FAILED
        return _loop(ingestor, printer, stop, args.poll_s)


def _loop(
    ingestor: Ingestor,
    printer: Callable[[TaskReport], None],
    stop: threading.Event,
    poll_s: float,
) -> int:
    """Poll every ``poll_s`` until stopped; a failed poll is reported and tried again at
    the next one (a source that is down for a while must not end the service)."""
    while not stop.is_set():
        try:
            ingestor.poll_once(printer)
        except ConfigurationError:
            raise
        except RLMError as exc:
            _report_error(exc, False)
        stop.wait(poll_s)
    return EXIT_OK


@contextlib.contextmanager
def _graceful(stop: threading.Event, trigger: Trigger) -> Generator[None]:
    """SIGTERM and SIGINT stop the polling and ask the runs in flight to stop (they are
    recorded as interrupted and resumed at the next start); the ingestor then exits."""

    def handle(signum: int, frame: FrameType | None) -> None:
        del frame
        print(f"rlm-ingestor: {signal.Signals(signum).name}: stopping", file=sys.stderr)
        stop.set()
        trigger.stop()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _printer(as_json: bool) -> Callable[[TaskReport], None]:
    def show(report: TaskReport) -> None:
        text = json.dumps(report.to_json(), ensure_ascii=False) if as_json else report.line()
        print(text, flush=True)

    return show


def _report_error(exc: RLMError, as_json: bool) -> None:
    from rlm_engine.errors import hint_for

    hint = hint_for(exc)
    print(f"rlm-ingestor: {exc}", file=sys.stderr)
    if hint:
        print(f"rlm-ingestor: hint: {hint}", file=sys.stderr)
    if as_json:
        error = {"type": type(exc).__name__, "message": str(exc), "hint": hint}
        print(json.dumps({"error": error}, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
