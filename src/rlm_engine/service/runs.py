"""`RunService`: the one run lifecycle every edge calls (the CLI, the HTTP server, the
queue): start, resume, replay, cancel, read and stream runs, scoped by tenant.

Runs execute as tasks on the running event loop; nothing here calls `asyncio.run`. Store
calls go through `asyncio.to_thread` (the store is synchronous). A run of another tenant
is `RunNotFoundError`, exactly as a missing one, so ids reveal nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Literal

from rlm_engine.engine.journal import NondeterminismError
from rlm_engine.engine.journal_store import ReplayExhausted, StoreJournal
from rlm_engine.engine.result import RunResult
from rlm_engine.errors import RLMError, RunInterrupted
from rlm_engine.events import Event, ModelCallStarted
from rlm_engine.service import details, lifecycle
from rlm_engine.service.build import build_rlm, memory_for
from rlm_engine.service.contexts import context_of, context_scratch, pinned_context, run_context
from rlm_engine.service.details import CellDetail, NodeDetail, ReplayCheck
from rlm_engine.service.errors import RunActiveError, RunCancelledError
from rlm_engine.service.event_feed import POLL_S, EventFeed, follow_event_batches
from rlm_engine.service.event_sink import StoreEventSink
from rlm_engine.service.lifecycle import HEARTBEAT_S, Beat, new_run_id
from rlm_engine.service.limits import ServiceLimits
from rlm_engine.service.paging import RunPage, cursor_after, parse_cursor
from rlm_engine.service.principal import LOCAL_TENANT, Principal
from rlm_engine.service.run_records import check_recorded
from rlm_engine.service.sandboxes import SandboxPools
from rlm_engine.service.session_restore import past_runs, restored_runs, restorer, session_runs
from rlm_engine.service.spec import RunSpec
from rlm_engine.settings import Settings
from rlm_engine.store.deferred import DeferredStore
from rlm_engine.store.errors import RunNotFoundError
from rlm_engine.store.pinned_context import BackgroundPin
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import NewRun, Run, RunStatus, RunTree, StoredEvent
from rlm_engine.store.run_rules import INTERRUPTED_DETAIL

log = logging.getLogger(__name__)

EventListener = Callable[[Event], None]
StopAs = Literal["cancelled", "interrupted"]
ExportFormat = Literal["ipynb", "jsonl", "md"]


def _log_warning(message: str) -> None:
    log.warning("%s", message)


def as_it_was(run: Run) -> Run:
    """The run a failed resume attempt hands back: one whose process died while running is
    put back as interrupted (what `mark_interrupted_runs` would have made it)."""
    if run.status != "running":
        return run
    return dataclasses.replace(
        run, status="interrupted", stop_reason="interrupted", detail=INTERRUPTED_DETAIL
    )


@dataclasses.dataclass(slots=True)
class _Execution:
    """A run executing in this process."""

    run_id: str
    sink: StoreEventSink
    task: asyncio.Task[RunResult] | None = None
    stop_as: StopAs | None = None
    """How a cancellation of the task is recorded (None: "interrupted")."""
    detail: str | None = None

    def stop(self, how: StopAs, detail: str | None = None) -> bool:
        """Cancel the task, to be recorded as ``how``; False if it has already ended."""
        if self.task is None or self.task.done():
            return False
        if self.stop_as is None:
            self.stop_as, self.detail = how, detail
        self.task.cancel()
        return True


class RunHandle:
    """A run this process executes: its result, its events, and a way to cancel it."""

    def __init__(
        self, service: RunService, who: Principal, run_id: str, task: asyncio.Task[RunResult]
    ):
        self._service = service
        self._who = who
        self._run_id = run_id
        self._task = task

    @property
    def run_id(self) -> str:
        return self._run_id

    async def result(self) -> RunResult:
        """The run's result once it ends. Raises what failed it (recorded as failed),
        `RunCancelledError` or `RunInterrupted`. Waiting is shielded: a waiter that is
        cancelled leaves the run going."""
        return await asyncio.shield(self._task)

    async def cancel(self) -> None:
        await self._service.cancel(self._who, self._run_id)

    def events(self, after_seq: int = -1) -> AsyncIterator[StoredEvent]:
        return self._service.events(self._who, self._run_id, after_seq=after_seq)


class RunService:
    """Starts, resumes, replays, cancels and reads the runs of a store.

    ``limits`` caps the time and depth of the runs it starts (a server's); the CLI passes
    none. ``heartbeat_s``: how often an executing run says it is alive and checks whether
    a cancel was requested for it. ``warn`` shows what a user should know but that does
    not stop the run (another engine recorded it, a session restored imperfectly)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        limits: ServiceLimits | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        poll_s: float = POLL_S,
        warn: Callable[[str], None] | None = None,
        sandboxes: SandboxPools | None = None,
    ) -> None:
        self.store = store
        self.sandboxes = sandboxes or SandboxPools(0)
        """Where runs take their sandboxes (warm pools in a server)."""
        self.settings = settings
        self.limits = limits
        self._heartbeat_s = heartbeat_s
        self._poll_s = poll_s
        self._warn = warn or _log_warning
        self._executions: dict[str, _Execution] = {}
        self._feed = EventFeed()

    # -- starting runs -------------------------------------------------------------------

    def capped(self, spec: RunSpec) -> RunSpec:
        """``spec`` held to the service's time and depth limits."""
        if self.limits is None:
            return spec
        return spec.capped(
            max_seconds=self.limits.execution_timeout_s, max_depth=self.limits.max_depth
        )

    def new_run(
        self,
        who: Principal,
        question: str,
        spec: RunSpec,
        *,
        session: str | None = None,
        context_key: str | None = None,
        run_id: str | None = None,
        queued: bool = False,
        auto_resume: bool = False,
    ) -> NewRun:
        """The record of a new run of ``who``'s tenant (for a queue to create)."""
        return lifecycle.new_run(
            run_id or new_run_id(),
            question,
            self.capped(spec),
            who=who,
            session=session,
            context_hash=context_key,
            queued=queued,
            auto_resume=auto_resume,
        )

    async def start(
        self,
        who: Principal,
        question: str,
        spec: RunSpec,
        *,
        session: str | None = None,
        context_key: str | None = None,
        run_id: str | None = None,
        on_event: EventListener | None = None,
        auto_resume: bool = False,
    ) -> RunHandle:
        """Record a run and execute it now, as a task on the running loop. ``context_key``
        names a context already pinned in the store (a session's); else the spec's context
        paths are pinned as the run starts. An existing ``run_id`` is
        `JournalConflictError`, never a second run."""
        spec = self.capped(spec)
        run_id = run_id or new_run_id()
        stack = contextlib.ExitStack()
        deferred = self.store if isinstance(self.store, DeferredStore) else None
        recording: lifecycle.Recording | None = None
        pin = None
        try:
            scratch = stack.enter_context(context_scratch())
            prior = await asyncio.to_thread(session_runs, self.store, session, who)
            if prior:  # a resume restores the REPL from the same runs
                spec = dataclasses.replace(spec, restored_from=tuple(r.run_id for r in prior))
            sink = self._sink(run_id)
            listener = _listener(run_id, sink, on_event)
            if deferred is not None:
                listener = _opening_at_first_call(listener, deferred)
            rlm = build_rlm(
                spec,
                self.settings,
                on_event=listener,
                memory=memory_for(self.store, session, who),
                persistent=bool(session),
                store=self.store,
                sandbox_factory=self.sandboxes.factory_for(spec, run_id=run_id, session=session),
            )
            past = await asyncio.to_thread(past_runs, self.store, prior, scratch)
            if context_key is not None:
                context = await asyncio.to_thread(
                    pinned_context, self.store, context_key, spec, scratch
                )
            else:
                context = context_of(spec)

            def record(store: Store) -> BackgroundPin | None:
                return lifecycle.open_run(
                    store,
                    run_id,
                    question,
                    spec,
                    who=who,
                    session=session,
                    context_key=context_key,
                    auto_resume=auto_resume,
                )

            if deferred is not None and not deferred.started:
                # The store is still to open: the run is recorded on its opening thread,
                # first thing, while the first root request is in flight.
                recorded = asyncio.wrap_future(deferred.prepare(record))
                recording = lifecycle.Recording(recorded, deferred.start)
            else:
                pin = await asyncio.to_thread(record, self.store)
        except BaseException:
            stack.close()
            raise
        execution = _Execution(run_id, sink)
        work = lifecycle.execute(
            rlm,
            self.store,
            sink,
            run_id=run_id,
            question=question,
            context=context,
            # A new run's journal is empty: its first root call reads nothing from the store.
            journal=StoreJournal(self.store, run_id, fresh=True),
            pin=pin,
            before=restorer(rlm, past, self._warn),
            beat=self._beat(execution),
            recording=recording,
        )
        return self._launch(who, execution, work, stack)

    async def resume(
        self,
        who: Principal,
        run_id: str,
        *,
        accept_divergence: bool = False,
        on_event: EventListener | None = None,
    ) -> RunHandle:
        """Claim an interrupted (or resumable failed, or cancelled) run and continue it
        from its journal: no journaled model call is made again. `RunNotResumableError`
        (with a hint) for a run that cannot be resumed."""
        await asyncio.to_thread(self.store.mark_interrupted_runs)
        before = as_it_was(await self._get(who, run_id))
        warning = check_recorded(before, "resume")
        if warning is not None:
            self._warn(warning)
        run = await asyncio.to_thread(self.store.claim_run, run_id)
        return await self._continue(
            who, run, previous=before, accept_divergence=accept_divergence, on_event=on_event
        )

    async def execute_claimed(self, run: Run, *, previous: Run | None) -> RunHandle:
        """Execute a run this process has just claimed (`Store.claim_next`): a queued one
        (``previous`` None) from its start, an interrupted one (``previous``: the run as
        it was before the claim) from its journal."""
        if previous is not None:
            warning = check_recorded(previous, "resume")
            if warning is not None:
                self._warn(warning)
        return await self._continue(_owner_of(run), run, previous=previous)

    async def _continue(
        self,
        who: Principal,
        run: Run,
        *,
        previous: Run | None,
        accept_divergence: bool = False,
        on_event: EventListener | None = None,
    ) -> RunHandle:
        """Execute a run already claimed by this process, with what its record says."""
        stack = contextlib.ExitStack()
        sink = self._sink(run.run_id)
        try:
            scratch = stack.enter_context(context_scratch())
            spec = RunSpec.from_json(run.settings)
            # A session's run began in a REPL restored from earlier runs: rebuild the same.
            earlier = await asyncio.to_thread(restored_runs, self.store, run)
            rlm = build_rlm(
                spec,
                self.settings,
                on_event=_listener(run.run_id, sink, on_event),
                memory=memory_for(self.store, run.session, who),
                persistent=bool(earlier) or (previous is None and run.session is not None),
                store=self.store,
                sandbox_factory=self.sandboxes.factory_for(
                    spec, run_id=run.run_id, session=run.session
                ),
            )
            context = await asyncio.to_thread(run_context, self.store, run, scratch)
            past = await asyncio.to_thread(past_runs, self.store, earlier, scratch)
        except BaseException as exc:
            stack.close()
            if isinstance(exc, RLMError):
                # Nothing ran: the run stays as it was, with the reason kept.
                detail = f"{type(exc).__name__}: {exc}"
                await asyncio.to_thread(
                    lifecycle.record_failure, self.store, run.run_id, detail, None, previous
                )
            raise
        execution = _Execution(run.run_id, sink)
        journal = StoreJournal(self.store, run.run_id, accept_divergence=accept_divergence)
        work = lifecycle.execute(
            rlm,
            self.store,
            sink,
            run_id=run.run_id,
            question=run.question,
            context=context,
            journal=journal,
            resuming=previous,
            before=restorer(rlm, past, self._warn),
            beat=self._beat(execution),
        )
        return self._launch(who, execution, work, stack)

    async def replay(
        self, who: Principal, run_id: str, *, on_event: EventListener | None = None
    ) -> RunResult:
        """Re-run a recorded run offline: stand-in models that refuse, a read-only journal,
        throwaway memory. Nothing is recorded."""
        run = await self._get(who, run_id)
        warning = check_recorded(run, "replay")
        if warning is not None:
            self._warn(warning)
        with context_scratch() as scratch:
            earlier = await asyncio.to_thread(restored_runs, self.store, run)
            spec = RunSpec.from_json(run.settings)
            rlm = build_rlm(
                spec,
                self.settings,
                on_event=on_event or _ignore,
                memory={},
                persistent=bool(earlier),
                offline=True,
                sandbox_factory=self.sandboxes.factory_for(spec),
            )
            context = await asyncio.to_thread(run_context, self.store, run, scratch)
            past = await asyncio.to_thread(past_runs, self.store, earlier, scratch)
            restore = restorer(rlm, past, self._warn)
            try:
                if restore is not None:
                    await restore()
                journal = StoreJournal(self.store, run.run_id, read_only=True)
                return await rlm.arun(run.question, context, run_id=run.run_id, journal=journal)
            finally:
                await rlm.aclose()

    async def replay_check(self, who: Principal, run_id: str) -> ReplayCheck:
        """`replay` the run and say whether it ends with the recorded answer. A replay the
        journal cannot carry to the end (it diverged, or needs a reply it lacks) is a
        check that did not match, with the reason, not an error."""
        run = await self._get(who, run_id)
        try:
            result = await self.replay(who, run_id)
        except (NondeterminismError, ReplayExhausted) as exc:
            return ReplayCheck(
                run_id=run_id,
                answer=None,
                stop_reason=None,
                stop_detail="",
                iterations=0,
                recorded_answer=run.answer,
                matched=False,
                error=f"{type(exc).__name__}: {exc}",
            )
        return ReplayCheck(
            run_id=run_id,
            answer=result.answer,
            stop_reason=result.stop_reason,
            stop_detail=result.stop_detail,
            iterations=result.iterations,
            recorded_answer=run.answer,
            matched=run.answer is not None and result.answer == run.answer,
        )

    # -- executing -----------------------------------------------------------------------

    def _sink(self, run_id: str) -> StoreEventSink:
        # A child run's events carry the root's run id, so waking the root's readers
        # covers them.
        return StoreEventSink(self.store, on_commit=lambda: self._feed.wake(run_id))

    def _beat(self, execution: _Execution) -> Beat:
        """The heartbeat of an executing run; it also notices a cancel requested by
        another process (`Store.request_cancel`) and stops the run."""
        store, every = self.store, self._heartbeat_s

        def beat_once() -> Run | None:
            store.heartbeat(execution.run_id)
            return store.get_run(execution.run_id)

        async def beat() -> None:
            while True:
                await asyncio.sleep(every)
                run = await asyncio.to_thread(beat_once)
                if run is not None and run.cancel_requested:
                    execution.stop("cancelled")
                    return

        return beat

    def _launch(
        self,
        who: Principal,
        execution: _Execution,
        work: Coroutine[Any, Any, RunResult],
        stack: contextlib.ExitStack,
    ) -> RunHandle:
        task = asyncio.get_running_loop().create_task(
            self._execute(execution, work, stack), name=f"rlm-run-{execution.run_id}"
        )
        # The outcome is recorded whether or not anyone awaits the result.
        task.add_done_callback(_retrieved)
        execution.task = task
        self._executions[execution.run_id] = execution
        return RunHandle(self, who, execution.run_id, task)

    async def _execute(
        self,
        execution: _Execution,
        work: Coroutine[Any, Any, RunResult],
        stack: contextlib.ExitStack,
    ) -> RunResult:
        run_id = execution.run_id
        try:
            return await work
        except asyncio.CancelledError:
            how: StopAs = execution.stop_as or "interrupted"
            with contextlib.suppress(Exception):
                await execution.sink.drain()  # the events so far, for readers and audit
            await asyncio.to_thread(self._record_stop, run_id, how, execution.detail)
            if how == "cancelled":
                raise RunCancelledError(run_id) from None
            raise RunInterrupted(run_id, "the service stopping") from None
        finally:
            self._executions.pop(run_id, None)
            self._feed.wake(run_id)
            # Removing the run's scratch copy of its context takes tens of milliseconds:
            # never on the loop that serves every other run and stream.
            await asyncio.to_thread(stack.close)

    def _record_stop(self, run_id: str, how: StopAs, detail: str | None) -> None:
        run = self.store.get_run(run_id)
        if run is None or run.status != "running":
            return  # its outcome was recorded just before the stop
        if how == "cancelled":
            self.store.finish_run(
                run_id, status="cancelled", stop_reason="cancelled", detail=detail or "cancelled"
            )
            return
        self.store.finish_run(
            run_id,
            status="interrupted",
            stop_reason="interrupted",
            detail=detail or INTERRUPTED_DETAIL,
        )

    async def cancel(self, who: Principal, run_id: str) -> Run:
        """Stop a run cooperatively and record it as "cancelled": at once if this process
        executes it (its journal made durable first), else at its owner's next heartbeat
        (a queued run is cancelled at once). A finished run is returned unchanged."""
        await self._get(who, run_id)
        execution = self._executions.get(run_id)
        if execution is not None and execution.task is not None:
            task = execution.task
            if execution.stop("cancelled"):
                await asyncio.wait([task])
            return await self._get(who, run_id)
        return await asyncio.to_thread(self.store.request_cancel, run_id)

    async def aclose(self, *, detail: str | None = None) -> None:
        """Stop every run this process executes, recorded as "interrupted" (their journals
        made durable first) with ``detail``, so a resume goes on from where they were."""
        tasks: list[asyncio.Task[RunResult]] = []
        for execution in list(self._executions.values()):
            if execution.stop("interrupted", detail) and execution.task is not None:
                tasks.append(execution.task)
        if tasks:
            await asyncio.wait(tasks)
        await self.sandboxes.aclose()

    def executing(self, run_id: str) -> bool:
        """Whether this process executes the run now."""
        return run_id in self._executions

    # -- reading -------------------------------------------------------------------------

    async def _get(self, who: Principal, run_id: str) -> Run:
        return await asyncio.to_thread(self.get_run, who, run_id)

    def get_run(self, who: Principal, run_id: str) -> Run:
        """The run, or `RunNotFoundError` (also for another tenant's)."""
        run = self.store.get_run(run_id)
        if run is None or run.tenant != who.tenant:
            raise RunNotFoundError(run_id)
        return run

    def list_runs(
        self,
        who: Principal,
        *,
        status: RunStatus | None = None,
        session: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """The tenant's runs, newest first, a page at a time."""
        before = None if cursor is None else parse_cursor(cursor)
        runs = self.store.list_runs(
            limit + 1, status=status, session=session, tenant=who.tenant, before=before
        )
        page = tuple(runs[:limit])
        more = len(runs) > limit and bool(page)
        return RunPage(runs=page, next_cursor=cursor_after(page[-1]) if more else None)

    def delete_run(self, who: Principal, run_id: str) -> None:
        """Delete a run with its journal and events; `RunActiveError` while it runs."""
        run = self.get_run(who, run_id)
        if run.status == "running" or self.executing(run_id):
            raise RunActiveError(run_id)
        if not self.store.delete_run(run_id):
            raise RunNotFoundError(run_id)

    def run_tree(self, who: Principal, run_id: str) -> RunTree:
        self.get_run(who, run_id)
        tree = self.store.run_tree(run_id)
        if tree is None:  # deleted since the lookup above
            raise RunNotFoundError(run_id)
        return tree

    def node_detail(
        self,
        who: Principal,
        run_id: str,
        node_id: str,
        *,
        max_chars: int = details.DEFAULT_MAX_CHARS,
    ) -> NodeDetail:
        """One node with its journaled request and response, each cut to ``max_chars``
        (`NodeNotFoundError`)."""
        self.get_run(who, run_id)
        return details.node_detail(self.store, run_id, node_id, max_chars=max_chars)

    def cell_detail(
        self,
        who: Principal,
        run_id: str,
        artifact_id: str,
        *,
        offset: int = 0,
        limit: int = details.DEFAULT_MAX_CHARS,
    ) -> CellDetail:
        """One cell with ``limit`` characters of its output from ``offset``
        (`CellNotFoundError`); only this cell's output is read."""
        self.get_run(who, run_id)
        return details.cell_detail(self.store, run_id, artifact_id, offset=offset, limit=limit)

    def export(self, who: Principal, run_id: str, fmt: ExportFormat) -> bytes:
        """The run as a notebook, JSONL or Markdown (UTF-8)."""
        from rlm_engine.store.export import export_run

        self.get_run(who, run_id)
        return export_run(self.store, run_id, fmt).encode("utf-8")

    async def events(
        self, who: Principal, run_id: str, *, after_seq: int = -1, follow: bool = True
    ) -> AsyncIterator[StoredEvent]:
        """The run's stored events after ``after_seq``, then (``follow``) the live ones as
        they are stored, until the run has ended and every event is delivered: each seq
        once, none skipped."""
        async for batch in self.event_batches(who, run_id, after_seq=after_seq, follow=follow):
            for event in batch:
                yield event

    async def wait(self, who: Principal, run_id: str) -> Run:
        """The run's record once it has ended, wherever it executes (its events followed
        to their end)."""
        async for _ in self.event_batches(who, run_id):
            pass
        return await asyncio.to_thread(self.get_run, who, run_id)

    async def event_batches(
        self, who: Principal, run_id: str, *, after_seq: int = -1, follow: bool = True
    ) -> AsyncIterator[list[StoredEvent]]:
        """`events`, as the store hands them out: a non-empty list per read (a stream
        sends each in one write)."""
        await self._get(who, run_id)
        async for batch in follow_event_batches(
            self.store,
            self._feed,
            run_id,
            after_seq=after_seq,
            follow=follow,
            poll_s=self._poll_s,
            local=lambda: self.executing(run_id),
        ):
            yield batch


def _listener(run_id: str, sink: StoreEventSink, on_event: EventListener | None) -> EventListener:
    """Every event to the store; only ``run_id``'s to ``on_event`` (a session's restore
    replays earlier runs under their own ids)."""

    def listen(event: Event) -> None:
        sink(event)
        if on_event is not None and event.run_id == run_id:
            on_event(event)

    return listen


def _opening_at_first_call(listener: EventListener, store: DeferredStore) -> EventListener:
    """``listener``, which also starts opening ``store`` once the first model request is
    on its way: its opening thread then competes for the interpreter lock with a loop
    that waits for the reply, not with the work before the request."""

    def listen(event: Event) -> None:
        listener(event)
        if isinstance(event, ModelCallStarted) and not store.started:
            # After the current step: the request is made when the loop next runs.
            asyncio.get_running_loop().call_soon(store.start)

    return listen


def _ignore(event: Event) -> None:
    return None


def _retrieved(task: asyncio.Task[RunResult]) -> None:
    if not task.cancelled():
        task.exception()


def _owner_of(run: Run) -> Principal:
    """Who a claimed run acts for: whoever asked for it (recorded with the run); runs
    recorded before that was kept act for the local user, or for their tenant."""
    if run.user is not None:
        return Principal(tenant=run.tenant, user=run.user)
    if run.tenant == LOCAL_TENANT:
        return Principal.local()
    return Principal(tenant=run.tenant, user=run.tenant)
