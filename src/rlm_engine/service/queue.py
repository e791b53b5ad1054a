"""The durable run queue: runs recorded as "queued" in the store, executed by whichever
service process claims them first.

`submit` records a run after checking the tenant's limits; `serve` claims as many runs as
this process has room for in one store transaction (`claim_batch`) and starts them side
by side. The store makes a claim atomic, so several processes on one store share the
work and never run a run twice. A run whose process died (its pid gone on this host, its
heartbeat stale elsewhere) is marked interrupted by the next claim and, being
`auto_resume`, claimed again and resumed from its journal.

The per-tenant limit is counted in the store (across every process) inside the claim's
transaction, and the batch stops taking a tenant's runs once it reaches it: a claimed run
is always one this process may start. The slots of a batch are reserved before the claim
and held until each run has started (or been given back), so starts that overlap never
take this process past its own limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from rlm_engine.service.errors import TenantLimitError
from rlm_engine.service.limits import ServiceLimits
from rlm_engine.service.principal import Principal
from rlm_engine.service.spec import RunSpec
from rlm_engine.store.errors import SessionNotFoundError
from rlm_engine.store.pinned_context import pin_context
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import Run
from rlm_engine.store.run_rules import INTERRUPTED_DETAIL

if TYPE_CHECKING:
    from rlm_engine.service.runs import RunService

log = logging.getLogger(__name__)

POLL_S = 1.0
STALE_AFTER_S = 15.0
"""A run owned on another host is taken over once its heartbeat is this old: it must be
well over the run service's heartbeat interval (`SERVICE_HEARTBEAT_S`), or a live run
elsewhere would be run twice."""
SERVICE_HEARTBEAT_S = 5.0
"""The heartbeat of runs a queue serves: a third of `STALE_AFTER_S`, so two missed beats
still do not make a live run look dead."""
CONCURRENT_RETRY_S = 5.0


def seconds_to_utc_midnight(now: float) -> float:
    """Seconds from ``now`` to the next UTC midnight (when daily budgets start over)."""
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (today + timedelta(days=1)).timestamp() - now


def utc_day_start(now: float) -> float:
    """The epoch seconds of the UTC midnight that began ``now``'s day."""
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()


def previous_state(run: Run) -> Run | None:
    """What a run `claim_batch` just returned was before the claim: None for a queued run
    (its first attempt), else the interrupted run a resume attempt may hand back."""
    # The store counts attempts: claiming a queued run starts attempt 1, resuming an
    # interrupted one adds one.
    if run.attempt <= 1:
        return None
    return dataclasses.replace(
        run,
        status="interrupted",
        stop_reason="interrupted",
        detail=INTERRUPTED_DETAIL,
        failure_kind=None,
        finished_at=run.updated_at,
        attempt=run.attempt - 1,
    )


class RunQueue:
    """Runs submitted for later, executed by `serve` up to the limits."""

    def __init__(
        self,
        service: RunService,
        store: Store,
        limits: ServiceLimits,
        *,
        poll_s: float = POLL_S,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self._service = service
        self._store = store
        self._limits = limits
        self._poll_s = poll_s
        self._stale_after_s = stale_after_s
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._serving: set[asyncio.Task[None]] = set()
        self._executing: dict[str, asyncio.Task[None]] = {}
        """Runs this queue started that have not finished, by run id."""
        self._reserved = 0
        """Slots held for runs being claimed or started, not yet in `_executing`."""

    @property
    def service(self) -> RunService:
        """The run service that executes what this queue claims."""
        return self._service

    @property
    def executing(self) -> frozenset[str]:
        """Ids of the runs this queue started in this process and that are still going."""
        return frozenset(self._executing)

    # -- submitting ----------------------------------------------------------------------

    async def submit(
        self,
        who: Principal,
        question: str,
        spec: RunSpec,
        *,
        session: str | None = None,
        context_key: str | None = None,
    ) -> Run:
        """Record a run as "queued" (resumed by the queue if its process dies) and wake
        the queue. `TenantLimitError` when the tenant has a full backlog or has spent its
        daily budget; `SessionNotFoundError` for another tenant's session."""
        run = await asyncio.to_thread(self._record, who, question, spec, session, context_key)
        self._wake.set()
        return run

    def _record(
        self,
        who: Principal,
        question: str,
        spec: RunSpec,
        session: str | None,
        context_key: str | None,
    ) -> Run:
        self.check_limits(who.tenant)
        if session is not None:
            found = self._store.get_session(session)
            if found is not None and found.tenant != who.tenant:
                raise SessionNotFoundError(session)
        if context_key is None and spec.context:
            # Pinned now, not when a process gets to it: the run sees the files as they
            # were when it was submitted.
            pinned = pin_context(self._store, list(spec.context))
            context_key = None if pinned is None else pinned.content_hash
        new = self._service.new_run(
            who,
            question,
            spec,
            session=session,
            context_key=context_key,
            queued=True,
            auto_resume=True,
        )
        return self._store.create_run(new)

    def check_limits(self, tenant: str, *, now: float | None = None) -> None:
        """Refuse new work of ``tenant`` (`TenantLimitError`) when it already runs its
        limit of runs and has as many waiting, or has spent its budget for the UTC day."""
        limit = self._limits.tenant_concurrent_runs
        running = self._store.count_runs(tenant=tenant, statuses=("running",))
        if running >= limit:
            queued = self._store.count_runs(tenant=tenant, statuses=("queued",))
            if queued >= limit:
                raise TenantLimitError(
                    f"tenant {tenant!r} has {running} runs running and {queued} waiting, "
                    f"its limit of {limit} each",
                    limit="concurrent_runs",
                    retry_after_s=CONCURRENT_RETRY_S,
                )
        budget = self._limits.daily_budget_usd
        if budget is None:
            return
        now = time.time() if now is None else now
        spent = self._store.tenant_cost_since(tenant, utc_day_start(now))
        if spent >= budget:
            raise TenantLimitError(
                f"tenant {tenant!r} has spent ${spent:.4f} today (UTC), its daily budget "
                f"of ${budget:.4f}",
                limit="daily_budget",
                retry_after_s=seconds_to_utc_midnight(now),
            )

    # -- serving -------------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event) -> None:
        """Claim and start runs until ``stop`` is set (or the queue is closed): at once
        when a run is submitted here or one of ours finishes, else every `poll_s`."""
        me = asyncio.current_task()
        if me is not None:
            self._serving.add(me)
        try:
            while not (stop.is_set() or self._closed.is_set()):
                self._wake.clear()
                try:
                    await self._fill()
                except Exception:
                    # A store that is briefly unreachable must not end the loop: the
                    # runs wait in the store until a later poll claims them.
                    log.exception("claiming queued runs failed; trying again")
                await self._sleep(stop)
        finally:
            if me is not None:
                self._serving.discard(me)

    async def _sleep(self, stop: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(e.wait()) for e in (self._wake, stop, self._closed)]
        try:
            await asyncio.wait(waits, timeout=self._poll_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def _free(self) -> int:
        return self._limits.max_concurrent_runs - len(self._executing) - self._reserved

    async def _fill(self) -> None:
        while not self._closed.is_set():
            want = self._free()
            if want <= 0:
                return
            # Held before the claim, so a second `serve` of this queue claiming at the same
            # time sees these slots as taken.
            self._reserved += want
            try:
                batch = await asyncio.to_thread(self._claim, want)
            except BaseException:
                self._reserved -= want
                raise
            self._reserved -= want - len(batch)
            if not batch:
                return
            # Side by side: a run's setup (its records, context and REPL) waits on the
            # store and the thread pool, and the next run need not wait for it.
            await asyncio.gather(*(self._start(run) for run in batch))
            if len(batch) < want:
                return  # nothing else claimable now

    def _claim(self, limit: int) -> list[Run]:
        return self._store.claim_batch(
            limit,
            stale_after_s=self._stale_after_s,
            tenant_limit=self._limits.tenant_concurrent_runs,
        )

    async def _start(self, run: Run) -> None:
        """Start a claimed run, freeing its reserved slot once it counts as executing
        (or has been given back)."""
        try:
            await self._start_claimed(run)
        finally:
            self._reserved -= 1

    async def _start_claimed(self, run: Run) -> None:
        previous = previous_state(run)
        try:
            handle = await self._service.execute_claimed(run, previous=previous)
        except Exception as exc:
            # The run is ours and marked running: give it back, or it would look alive
            # for as long as this process lives.
            log.exception("could not start claimed run %s", run.run_id)
            await asyncio.to_thread(self._give_back, run, previous, exc)
            return
        # `result()` is shielded: closing the queue stops watching a run, never the run.
        self._executing[run.run_id] = asyncio.create_task(
            self._watch(run.run_id, handle.result()), name=f"rlm-queue-watch-{run.run_id}"
        )

    def _give_back(self, run: Run, previous: Run | None, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        current = self._store.get_run(run.run_id)
        if current is None or current.status != "running":
            return  # the service recorded an outcome itself
        if previous is not None:
            self._store.abandon_attempt(run.run_id, previous=previous, error=error)
        else:
            self._store.finish_run(
                run.run_id,
                status="failed",
                stop_reason="error",
                detail=error,
                failure_kind="unknown",
            )

    async def _watch(self, run_id: str, result: Awaitable[object]) -> None:
        try:
            await result
        except asyncio.CancelledError:
            raise
        except Exception:
            pass  # the run service records how the run ended; the queue only frees its slot
        finally:
            self._executing.pop(run_id, None)
            self._wake.set()

    async def aclose(self) -> None:
        """Stop claiming; `serve` returns. Runs already started keep going until the run
        service stops them (`RunService.aclose` records them interrupted, so a queue
        elsewhere, or this one after a restart, resumes them)."""
        self._closed.set()
        serving = list(self._serving)
        if serving:
            await asyncio.wait(serving)
        watchers = list(self._executing.values())
        for watcher in watchers:
            watcher.cancel()
        for watcher in watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
