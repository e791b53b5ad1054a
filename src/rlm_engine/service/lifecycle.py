"""One run's lifecycle: record it, pin its context, execute it journaled with its events
recorded and its heartbeat beating, and record how it ended.

`RunService` drives every run through `execute`; nothing else records a run's outcome.
Cancellation is the caller's to record (as "cancelled" or "interrupted"): `execute` only
makes the journal durable before it lets the cancellation through.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from rlm_engine.engine.journal import Journal
from rlm_engine.engine.result import RunResult
from rlm_engine.engine.rlm import RLM
from rlm_engine.errors import ErrorCause, RLMError
from rlm_engine.plugins.base import CellDecision, CellInfo, Plugin
from rlm_engine.sandbox.base import ContextValue
from rlm_engine.service.event_sink import StoreEventSink
from rlm_engine.service.principal import Principal
from rlm_engine.service.run_records import SETTINGS_VERSION, engine_version, failure_kind
from rlm_engine.service.spec import RunSpec
from rlm_engine.store.errors import StoreError
from rlm_engine.store.pinned_context import BackgroundPin
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import NewRun, Run, RunTotals
from rlm_engine.store.run_rules import PERMANENT_FAILURES

HEARTBEAT_S = 30.0

Beat = Callable[[], Coroutine[Any, Any, None]]
"""A run's heartbeat: a coroutine that beats until it is cancelled."""


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def new_run(
    run_id: str,
    question: str,
    spec: RunSpec,
    *,
    who: Principal,
    session: str | None = None,
    context_hash: str | None = None,
    queued: bool = False,
    auto_resume: bool = False,
) -> NewRun:
    """The record that opens a run of ``who``'s tenant, stamped with this engine's version
    and the shape of its settings."""
    return NewRun(
        run_id=run_id,
        question=question,
        model=spec.model,
        sub_model=spec.sub_model or spec.model,
        settings=spec.to_json(),
        session=session,
        context_hash=context_hash,
        engine_version=engine_version(),
        settings_version=SETTINGS_VERSION,
        tenant=who.tenant,
        user=who.user,
        queued=queued,
        auto_resume=auto_resume,
    )


def open_run(
    store: Store,
    run_id: str,
    question: str,
    spec: RunSpec,
    *,
    who: Principal,
    session: str | None = None,
    context_key: str | None = None,
    auto_resume: bool = False,
) -> BackgroundPin | None:
    """Record a new run at once, and start pinning its context in the store (so resume
    never depends on the files staying as they are) in the background.

    The run refers to its context by the pin's key from the start; pass the pin to
    `execute`, whose cells wait for the copy and which fails the run if a file changed
    before it was copied. None when the run has no context to pin: none at all, or one
    already pinned (``context_key``, a session's)."""
    pin = None
    if context_key is None and spec.context:
        pin = BackgroundPin(store, run_id, list(spec.context))
    record = new_run(
        run_id,
        question,
        spec,
        who=who,
        session=session,
        context_hash=context_key if pin is None else pin.key,
        auto_resume=auto_resume,
    )
    store.create_run(record)
    return None if pin is None else pin.start()


def record_failure(
    store: Store, run_id: str, detail: str, cause: ErrorCause | None, resuming: Run | None
) -> None:
    """Record that a run failed; a failed resume attempt (``resuming`` is the run before it
    was claimed) leaves the run as it was, with ``detail`` as its last error, unless the
    failure is one a later resume would meet again."""
    kind = failure_kind(cause)
    if resuming is not None and kind not in PERMANENT_FAILURES:
        if kind == "divergence" and resuming.engine_version != engine_version():
            recorded = resuming.engine_version or "a version that was not recorded"
            detail += f" (recorded by rlm-engine {recorded}, resumed with {engine_version()})"
        store.abandon_attempt(run_id, previous=resuming, error=detail)
        return
    store.finish_run(run_id, status="failed", stop_reason="error", detail=detail, failure_kind=kind)


def close_run(store: Store, result: RunResult, resuming: Run | None = None) -> None:
    if result.stop_reason == "error":
        record_failure(store, result.run_id, result.stop_detail, result.cause, resuming)
        return
    store.finish_run(
        result.run_id,
        status="completed",
        stop_reason=result.stop_reason,
        answer=result.answer,
        detail=result.stop_detail,
        totals=RunTotals(
            input_tokens=result.usage.input_tokens,
            output_tokens=result.usage.output_tokens,
            cached_tokens=result.usage.cached_tokens,
            cost_usd=result.cost_usd,
            sub_calls=result.sub_calls,
            iterations=result.iterations,
        ),
    )


def closed(store: Store, result: RunResult, resuming: Run | None) -> RunResult:
    """Record the run's outcome; if the store cannot (its disk is full), the run ends as a
    ``store`` failure with the outcome it reached kept in its journal: a resume records
    it once the store can write again."""
    try:
        close_run(store, result, resuming)
    except StoreError as exc:
        note = f"the outcome could not be recorded ({exc})"
        stopped = stopped_by(result, exc, note=note)
        with contextlib.suppress(StoreError):  # the failure itself may fit where more did not
            record_failure(store, result.run_id, stopped.stop_detail, stopped.cause, resuming)
        return stopped
    return result


def stopped_by(result: RunResult, exc: RLMError, *, note: str = "") -> RunResult:
    """``result`` as an ``error`` stop caused by ``exc`` (an earlier error stop keeps its
    own cause; ``note`` is added to its detail)."""
    if result.stop_reason == "error":
        detail = f"{result.stop_detail}; {note}" if note else result.stop_detail
        return dataclasses.replace(result, stop_detail=detail)
    detail = f"{type(exc).__name__}: {exc}" + (f"; {note}" if note else "")
    return dataclasses.replace(
        result, stop_reason="error", stop_detail=detail, cause=ErrorCause.of(exc)
    )


def heartbeat(store: Store, run_id: str, every_s: float = HEARTBEAT_S) -> Beat:
    """The plain heartbeat: say the run's owner is alive every ``every_s`` seconds."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)
            await asyncio.to_thread(store.heartbeat, run_id)

    return beat


@dataclasses.dataclass(frozen=True, slots=True)
class Recording:
    """A run recorded while it starts, because its store is still opening (the CLI's
    `DeferredStore`): ``pin`` resolves to what `open_run` returned once the run is
    recorded, or to the error that kept it from being recorded; ``begin`` starts the
    opening (idempotent). Cells wait for it, and so does every write of the run: the
    store runs the recording before any other use."""

    pin: asyncio.Future[BackgroundPin | None]
    begin: Callable[[], None]

    async def done(self) -> BackgroundPin | None:
        """The run's pin once it is recorded; raises what kept it from being recorded."""
        self.begin()
        return await asyncio.shield(self.pin)

    def pin_if_recorded(self) -> BackgroundPin | None:
        pin = self.pin
        if not pin.done() or pin.cancelled() or pin.exception() is not None:
            return None
        return pin.result()


class RecordGate(Plugin):
    """Holds the cells of a run until it is recorded (`Recording`), then until its
    context is pinned, as `ContextPinGate` does. Required: a run that could not be
    recorded runs no cell."""

    name = "run-record"
    required = True

    def __init__(self, recording: Recording) -> None:
        self.recording = recording

    async def before_cell(self, cell: CellInfo) -> CellDecision | None:
        pin = await self.recording.done()
        if pin is not None and cell.run_id == pin.run_id:
            await pin.wait()
        return None


class ContextPinGate(Plugin):
    """Holds the cells of a run until its context is pinned: the model calls before the
    first cell need only the context's shape, so they go ahead while the files are copied.
    A pin that failed stops the run (the plugin is required)."""

    name = "context-pin"
    required = True

    def __init__(self, pin: BackgroundPin) -> None:
        self.pin = pin

    async def before_cell(self, cell: CellInfo) -> CellDecision | None:
        if cell.run_id == self.pin.run_id:
            await self.pin.wait()
        return None


async def journaled_run(
    rlm: RLM,
    store: Store,
    sink: StoreEventSink,
    *,
    run_id: str,
    question: str,
    context: ContextValue,
    journal: Journal,
    pin: BackgroundPin | None = None,
    beat: Beat | None = None,
    recording: Recording | None = None,
) -> RunResult:
    """One run with every step journaled and every event recorded; with the `pin` of its
    context, cells wait for it and the run ends only once the context is kept. With a
    ``recording`` (a run still being recorded), cells wait for the record, and the run
    ends only once it is recorded."""
    sink.run_ids.add(run_id)
    beating = asyncio.create_task((beat or heartbeat(store, run_id))())
    gate: Plugin | None = None
    if recording is not None:
        gate = RecordGate(recording)
    elif pin is not None:
        gate = ContextPinGate(pin)
    if gate is not None:
        rlm.plugins.insert(0, gate)
    try:
        result = await rlm.arun(question, context, run_id=run_id, journal=journal)
        if recording is not None:
            pin = await recording.done()
        if pin is not None:
            await pin.wait()  # raises what failed it, e.g. a file changed before its copy
    finally:
        if gate is not None:
            rlm.plugins.remove(gate)
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await beating  # a heartbeat the store refused: the run's own writes say why
    try:
        await sink.drain()
    except StoreError as exc:
        return stopped_by(result, exc)
    return result


async def execute(
    rlm: RLM,
    store: Store,
    sink: StoreEventSink,
    *,
    run_id: str,
    question: str,
    context: ContextValue,
    journal: Journal,
    before: Callable[[], Awaitable[None]] | None = None,
    pin: BackgroundPin | None = None,
    resuming: Run | None = None,
    beat: Beat | None = None,
    recording: Recording | None = None,
) -> RunResult:
    """Drive one journaled run to its end and record its outcome; a run that fails with an
    error is recorded as failed with the reason (and its kind) before the error propagates.
    ``pin`` is what `open_run` returned: the run is recorded once its context is kept.
    ``recording``: the run is being recorded meanwhile (`Recording`; no ``pin`` then); a
    run that could not be recorded raises what stopped it, with nothing to record.
    ``resuming``: the run as it was before `Store.claim_run`, which a failed attempt puts
    back (`record_failure`). Cancelled, it makes the journal durable and re-raises."""
    try:
        try:
            if before is not None:
                await before()
            result = await journaled_run(
                rlm,
                store,
                sink,
                run_id=run_id,
                question=question,
                context=context,
                journal=journal,
                pin=pin,
                beat=beat,
                recording=recording,
            )
        except asyncio.CancelledError:
            # The engine has stopped; the last root reply and cell outcome it held back
            # become durable, so a resume need not redo them.
            with contextlib.suppress(Exception):
                await journal.flush()
            raise
        finally:
            if recording is not None:
                pin = recording.pin_if_recorded()
            if pin is not None:
                pin.stop()  # abandons a pin still going when the run ended early
            await rlm.aclose()
    except RLMError as exc:
        if recording is not None:
            try:
                late = await recording.done()  # an engine that failed fast may beat it
            except Exception as unrecorded:
                # No run was recorded: none to record the failure with, nor to name.
                if unrecorded is exc:
                    raise
                raise unrecorded from exc
            if late is not None:
                late.stop()
        exc.run_id = run_id  # pyright: ignore[reportAttributeAccessIssue]
        detail = f"{type(exc).__name__}: {exc}"
        try:
            await asyncio.to_thread(
                record_failure, store, run_id, detail, ErrorCause.of(exc), resuming
            )
        except StoreError as unrecorded:
            unrecorded.run_id = run_id  # pyright: ignore[reportAttributeAccessIssue]
            raise unrecorded from exc
        raise
    return await asyncio.to_thread(closed, store, result, resuming)
