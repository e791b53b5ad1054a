"""Driving a run from the terminal: `asyncio.run`, Ctrl-C and SIGTERM, the progress line.

The run itself (recording, journaling, heartbeat, outcome) is the run service's; this
module only gives it an event loop and turns a signal into an interrupted run.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from rlm_engine.cli.interrupts import Interrupts
from rlm_engine.engine.journal import Journal
from rlm_engine.engine.result import RunResult
from rlm_engine.engine.rlm import RLM
from rlm_engine.errors import RunInterrupted
from rlm_engine.events import Event
from rlm_engine.sandbox.base import ContextValue
from rlm_engine.service.event_sink import StoreEventSink
from rlm_engine.service.lifecycle import execute
from rlm_engine.service.runs import RunHandle, RunService
from rlm_engine.settings import Settings
from rlm_engine.store.pinned_context import BackgroundPin
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import Run


def warn(message: str) -> None:
    """What the run service warns about, on stderr."""
    print(f"rlm: warning: {message}", file=sys.stderr)


def run_in_service(
    store: Store,
    settings: Settings,
    progress: contextlib.AbstractContextManager[Any],
    run_id: str,
    start: Callable[[RunService], Awaitable[RunHandle]],
) -> RunResult:
    """Start a run with ``start`` on a `RunService` of ``store`` and wait for its result,
    showing ``progress``. Ctrl-C or SIGTERM stops the run, records it as interrupted (its
    journal made durable) and raises `RunInterrupted`."""
    interrupts = Interrupts(run_id)

    async def go() -> RunResult:
        service = RunService(store, settings, warn=warn)
        try:
            handle = await start(service)
            return await handle.result()
        except asyncio.CancelledError:
            await service.aclose(detail=interrupts.detail())
            raise

    return _driven(store, progress, interrupts, go)


def run_and_record(
    rlm: RLM,
    store: Store,
    sink: StoreEventSink,
    progress: contextlib.AbstractContextManager[Any],
    *,
    run_id: str,
    question: str,
    context: ContextValue,
    journal: Journal,
    before: Callable[[], Awaitable[None]] | None = None,
    pin: BackgroundPin | None = None,
    resuming: Run | None = None,
) -> RunResult:
    """Drive a run of an RLM built by the caller (``rlm demo``'s scripted models) through
    the service's lifecycle (`execute`), as `run_in_service` does."""
    interrupts = Interrupts(run_id)

    async def go() -> RunResult:
        return await execute(
            rlm,
            store,
            sink,
            run_id=run_id,
            question=question,
            context=context,
            journal=journal,
            before=before,
            pin=pin,
            resuming=resuming,
        )

    return _driven(store, progress, interrupts, go)


def _driven(
    store: Store,
    progress: contextlib.AbstractContextManager[Any],
    interrupts: Interrupts,
    go: Callable[[], Awaitable[RunResult]],
) -> RunResult:
    async def guarded() -> RunResult:
        return await interrupts.guard(go())

    try:
        with progress:
            return asyncio.run(guarded())
    except (asyncio.CancelledError, KeyboardInterrupt) as exc:
        if isinstance(exc, asyncio.CancelledError) and interrupts.signal_name is None:
            raise
        interrupts.noticed()  # a Ctrl-C before our handlers were in place
        _still_running_interrupted(store, interrupts.run_id, interrupts.detail())
        raise RunInterrupted(interrupts.run_id, interrupts.signal_name or "SIGINT") from None


def _still_running_interrupted(store: Store, run_id: str, detail: str) -> None:
    """Record as interrupted a run the signal stopped before the service could (a Ctrl-C
    while it was being set up); one the service recorded is left as it is."""
    run = store.get_run(run_id)
    if run is not None and run.status == "running":
        store.finish_run(run_id, status="interrupted", stop_reason="interrupted", detail=detail)


def listeners(
    run_id: str, sink: StoreEventSink, progress: Callable[[Event], None]
) -> Callable[[Event], None]:
    """Every event to the store; only ``run_id``'s to the screen."""

    def on_event(event: Event) -> None:
        sink(event)
        if event.run_id == run_id:
            progress(event)

    return on_event
