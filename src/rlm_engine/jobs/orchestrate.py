"""What one orchestrator invocation does: start a run, resume one, or report one.

The run itself goes through the run service exactly as ``rlm ask`` does (`spec_from_args`,
`run_in_service`); this module adds what a job needs around it:

- the plan: a ``--dedupe-key`` whose run has finished is reported and nothing starts; an
  interrupted run (a killed process's, found by `Store.mark_interrupted_runs`) with the
  same key, or in the same session with the same prompt, is resumed from its journal;
  anything else starts a new run in the session;
- the lakehouse: the ``runs`` row is written when the run starts and re-mirrored after
  each iteration (`MirrorPump`: off the event loop, one mirror at a time) and at the end,
  with the run's telemetry and memory (`mirror_run`); the session's scoped state is
  loaded before and saved after the run (`DeltaSessionStore`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rlm_engine.errors import ConfigurationError
from rlm_engine.jobs.settings import JobSettings

if TYPE_CHECKING:
    from rlm_engine.engine.result import RunResult
    from rlm_engine.events import Event
    from rlm_engine.integrations.tables import TableStore
    from rlm_engine.service.runs import RunHandle, RunService
    from rlm_engine.service.spec import RunSpec
    from rlm_engine.settings import Settings
    from rlm_engine.store.protocol import Store
    from rlm_engine.store.records import Run

ITERATION_KEY = "rlm:iteration"
"""Session-scoped: root iterations run in the session so far (kept across invocations)."""
LAST_RUN_KEY = "rlm:last_run_id"
RUN_KEY = "temp:rlm:run_id"
"""Invocation-scoped glue: dropped when the state is saved."""
LAKEHOUSE_TABLES = (
    "sessions",
    "app_state",
    "user_state",
    "runs",
    "artifact_registry",
    "telemetry",
    "memory",
)
RESUMED_STATUSES = frozenset({"interrupted"})
"""An unfinished run: its process died or was stopped; a resume continues it."""
SESSION_RUNS_SCANNED = 200

Action = Literal["start", "resume", "report"]


@dataclass(frozen=True, slots=True)
class Recorded:
    """A finished run as its records show it (the store's, else the lakehouse row)."""

    run_id: str
    status: str
    stop_reason: str
    answer: str
    detail: str
    iterations: int
    sub_calls: int
    cost_usd: float | None

    @classmethod
    def of_run(cls, run: Run) -> Recorded:
        return cls(
            run_id=run.run_id,
            status=run.status,
            stop_reason=run.stop_reason or "",
            answer=run.answer or "",
            detail=run.detail or "",
            iterations=run.totals.iterations,
            sub_calls=run.totals.sub_calls,
            cost_usd=run.totals.cost_usd,
        )

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> Recorded:
        return cls(
            run_id=str(row["run_id"]),
            status=str(row.get("status") or ""),
            stop_reason=str(row.get("stop_reason") or ""),
            answer=str(row.get("answer") or ""),
            detail="",
            iterations=int(row.get("iterations") or 0),
            sub_calls=int(row.get("sub_calls") or 0),
            cost_usd=row.get("cost_usd"),
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """What this invocation does with which run."""

    action: Action
    run_id: str
    dedupe_key: str | None
    recorded: Recorded | None = None
    """The run reported (``report``)."""


class MirrorPump:
    """Mirrors a run to the lakehouse whenever `poke` is called, on a thread of its own: the
    event loop never waits for a Delta commit, at most one mirror is in flight, and pokes
    that arrive during one coalesce into one more. A failed mirror is a warning: the next
    one (at the latest, the final one after the run) copies what it missed."""

    def __init__(self, mirror: Callable[[], None], warn: Callable[[str], None]) -> None:
        self._mirror = mirror
        self._warn = warn
        self._wanted = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="rlm-mirror", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wanted.set()

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            if self._closing:
                return
            self._wanted.clear()
            try:
                self._mirror()
            except Exception as exc:
                self._warn(f"mirroring the run to the lakehouse failed (retried later): {exc}")

    def close(self) -> None:
        """Stop after the mirror in flight (the caller mirrors once more, finally)."""
        self._closing = True
        self._wanted.set()
        self._thread.join()


def _warn(message: str) -> None:
    print(f"rlm: warning: {message}", file=sys.stderr)


def plan_run(
    store: Store, lake: TableStore, job: JobSettings, prompt: str, dedupe_key: str | None
) -> Plan:
    """Decide between reporting, resuming and starting (see the module's docstring)."""
    from rlm_engine.service.lifecycle import new_run_id
    from rlm_engine.service.principal import LOCAL_TENANT

    store.mark_interrupted_runs()  # a killed orchestrator's run becomes "interrupted"
    if dedupe_key:
        plan = _plan_for_key(store, lake, dedupe_key)
        if plan is not None:
            return plan
    runs = store.list_runs(SESSION_RUNS_SCANNED, session=job.session_id, tenant=LOCAL_TENANT)
    for run in runs:  # newest first
        if run.status in RESUMED_STATUSES and run.question == prompt:
            key = dedupe_key or _recorded_key(lake, run.run_id)
            return Plan("resume", run.run_id, key)
    return Plan("start", new_run_id(), dedupe_key)


def _plan_for_key(store: Store, lake: TableStore, key: str) -> Plan | None:
    """The plan for a run already recorded with ``key``; None if there is none."""
    rows = lake.read("runs", where={"dedupe_key": key})
    if not rows:
        return None
    row = max(rows, key=lambda r: float(r.get("created_time") or 0.0))
    run = store.get_run(str(row["run_id"]))
    if run is None:  # the lakehouse outlived this machine's store: trust its row
        if row.get("status") in ("completed", "failed", "cancelled"):
            return Plan("report", str(row["run_id"]), key, Recorded.of_row(row))
        return None
    if run.status in RESUMED_STATUSES:
        return Plan("resume", run.run_id, key)
    if run.status == "running":
        raise ConfigurationError(
            f"run {run.run_id} with dedupe key {key!r} is running in another process "
            f"(pid {run.owner_pid} on {run.owner_host})",
            hint="wait for it to finish, then ask again: its answer is reported",
        )
    return Plan("report", run.run_id, key, Recorded.of_run(run))


def _recorded_key(lake: TableStore, run_id: str) -> str | None:
    """The dedupe key the lakehouse row of ``run_id`` carries (kept when resuming)."""
    for row in lake.read("runs", where={"run_id": run_id}):
        key = row.get("dedupe_key")
        if key:
            return str(key)
    return None


def orchestrate(args: argparse.Namespace) -> int:
    """Run (or resume, or report) one orchestrator run; the exit status of ``rlm ask``."""
    from rlm_engine.cli.inputs import checked_contexts
    from rlm_engine.cli.store_access import cli_store
    from rlm_engine.jobs.prompt_source import resolve_prompt
    from rlm_engine.settings import Settings

    job = JobSettings.from_env().with_flags(args)
    if job.mode == "databricks":
        from rlm_engine.jobs.databricks_mode import load_job_secrets, tables, workspace

        client = workspace(job)
        load_job_secrets(client, job.secret_scope)  # before the settings read the keys
        lake = tables(client, job.catalog, job.schema)
    else:
        job.require_local()
        lake = job.lake()
    prompt = resolve_prompt(job)
    settings = Settings.from_env()
    # A job's task passes every parameter, so an empty `--context=` means no context.
    given = [path for path in args.context if path]
    contexts = checked_contexts(given, args.binary, args.encoding, settings.home)
    args = argparse.Namespace(
        **{**vars(args), "context": contexts, "max_iterations": job.max_iterations}
    )
    lake.ensure(*LAKEHOUSE_TABLES)
    with cli_store(settings) as store:
        store.open_session(job.session_id)
        plan = plan_run(store, lake, job, prompt, args.dedupe_key)
        if plan.action == "report":
            assert plan.recorded is not None
            return report_recorded(plan.recorded, job, plan.dedupe_key, as_json=args.json)
        return _run(store, settings, lake, job, plan, prompt, args)


def _run(
    store: Store,
    settings: Settings,
    lake: TableStore,
    job: JobSettings,
    plan: Plan,
    prompt: str,
    args: argparse.Namespace,
) -> int:
    """Start or resume ``plan``'s run through the run service, with its lakehouse rows."""
    from rlm_engine.cli.ask import spec_from_args
    from rlm_engine.cli.outcome import exit_code
    from rlm_engine.cli.progress import Progress
    from rlm_engine.cli.run_driver import run_in_service
    from rlm_engine.jobs.mirror import mirror_run
    from rlm_engine.jobs.session_state import DeltaSessionStore
    from rlm_engine.service.principal import LOCAL_TENANT, Principal
    from rlm_engine.store.errors import RunNotResumableError

    who = Principal(tenant=LOCAL_TENANT, user=job.user_id)
    spec: RunSpec | None = None  # a resume rebuilds the run from its stored spec
    if plan.action == "start":
        spec = spec_from_args(args, settings)
        if args.executor == "process" and job.mode == "databricks":
            from rlm_engine.jobs.databricks_mode import artifact_root, with_prompt_note

            # each cell an artifact, run by a run of the executor job
            spec = dataclasses.replace(with_prompt_note(spec), artifacts=artifact_root(job))
        elif args.executor == "process":  # each cell an artifact, run by rlm-executor
            spec = dataclasses.replace(spec, artifacts=lake.root)
    sessions = DeltaSessionStore(lake)
    state = sessions.load(job.session_id, job.user_id)

    def mirror() -> None:
        mirror_run(
            store,
            lake,
            plan.run_id,
            session_id=job.session_id,
            user_id=job.user_id,
            dedupe_key=plan.dedupe_key,
        )

    progress = Progress(verbose=args.verbose)
    pump = MirrorPump(mirror, _warn)

    def on_event(event: Event) -> None:
        progress(event)
        if event.type == "iteration_finished":
            pump.poke()

    async def start(service: RunService) -> RunHandle:
        if plan.action == "resume":
            try:
                handle = await service.resume(who, plan.run_id, on_event=on_event)
            except RunNotResumableError as exc:
                raise ConfigurationError(str(exc), hint=exc.hint) from exc
        else:
            assert spec is not None
            handle = await service.start(
                who, prompt, spec, session=job.session_id, run_id=plan.run_id, on_event=on_event
            )
        await asyncio.to_thread(mirror)  # the `runs` row, "running", with its dedupe key
        return handle

    try:
        result = run_in_service(store, settings, progress, plan.run_id, start)
    except BaseException:
        pump.close()
        if store.get_run(plan.run_id) is not None:  # else it failed before it was recorded
            _final_mirror(mirror)
        raise
    pump.close()
    mirror()
    sessions.save(job.session_id, job.user_id, next_state(state, result))
    print_outcome(result, job, plan, as_json=args.json)
    return exit_code(result)


def _final_mirror(mirror: Callable[[], None]) -> None:
    """Mirror a run that ended with an error; a failure here must not hide that error."""
    try:
        mirror()
    except Exception as exc:
        _warn(f"mirroring the run to the lakehouse failed: {exc}")


def next_state(state: Mapping[str, Any], result: RunResult) -> dict[str, Any]:
    """The session state after a run: its iterations counted (session scope), its id as
    the last run, and the invocation's ``temp:`` glue (never persisted)."""
    out = dict(state)
    done = out.get(ITERATION_KEY)
    before = done if isinstance(done, int) and not isinstance(done, bool) else 0
    out[ITERATION_KEY] = before + result.iterations
    out[LAST_RUN_KEY] = result.run_id
    out[RUN_KEY] = result.run_id
    return out


def print_outcome(result: RunResult, job: JobSettings, plan: Plan, *, as_json: bool) -> None:
    """As ``rlm ask``: the answer (text), or its JSON object with the job's fields."""
    import json

    from rlm_engine.cli.outcome import print_result, result_json

    if not as_json:
        print_result(result, False)
        return
    data = result_json(result)
    data.update(_job_fields(job, plan.run_id, plan.dedupe_key, resumed=plan.action == "resume"))
    print(json.dumps(data, ensure_ascii=False, default=str))


def _job_fields(
    job: JobSettings, run_id: str, dedupe_key: str | None, *, resumed: bool
) -> dict[str, Any]:
    return {
        "session_id": job.session_id,
        "run_id": run_id,
        "dedupe_key": dedupe_key,
        "resumed": resumed,
    }


def report_recorded(
    recorded: Recorded, job: JobSettings, dedupe_key: str | None, *, as_json: bool
) -> int:
    """A run that already finished under ``dedupe_key``: its answer, nothing started."""
    import json

    from rlm_engine.cli.outcome import (
        EXIT_ANSWER,
        EXIT_ERROR,
        EXIT_NO_ANSWER,
        has_answer,
        print_stop,
        stop_hint,
    )

    answered = has_answer(recorded.stop_reason, recorded.answer)
    code = EXIT_ERROR if recorded.status == "failed" else EXIT_NO_ANSWER
    if answered:
        code = EXIT_ANSWER
    hint = "" if answered else stop_hint(recorded.stop_reason, recorded.detail)
    if as_json:
        data: dict[str, Any] = {
            "answer": recorded.answer,
            "fields": None,
            "run_id": recorded.run_id,
            "stop_reason": recorded.stop_reason,
            "stop_detail": recorded.detail,
            "iterations": recorded.iterations,
            "sub_calls": recorded.sub_calls,
            "cost_usd": recorded.cost_usd,
            "exit_code": code,
            "hint": hint,
        }
        data.update(_job_fields(job, recorded.run_id, dedupe_key, resumed=False))
        print(json.dumps(data, ensure_ascii=False, default=str))
        return code
    if recorded.answer:
        print(recorded.answer)
    print(
        f"\n[run {recorded.run_id} with dedupe key {dedupe_key!r} had already finished "
        f"({recorded.stop_reason}); nothing was started]",
        file=sys.stderr,
    )
    if not answered:
        print_stop(recorded.stop_reason, recorded.detail, hint)
    return code
