"""The server's lifetime: open the services, run the queue, and close both on shutdown.

Shutdown stops the queue first (no new claims), then the service stops its running runs
as "interrupted" with their journals flushed, so the next process to start (this one
restarted, or another on the same store) resumes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from rlm_engine.service import Services, open_services
from rlm_engine.settings import Settings

log = logging.getLogger("rlm_engine.server")

Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]


def lifespan_for(settings: Settings, services: Services | None) -> Lifespan:
    """The lifespan of an app on ``services`` (kept open: the caller owns them), else on
    services opened from ``settings`` (closed here)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None]:
        owned = services is None
        opened = await asyncio.to_thread(open_services, settings) if owned else services
        assert opened is not None
        app.state.services = opened
        stop = asyncio.Event()
        queue = asyncio.create_task(opened.queue.serve(stop), name="rlm-run-queue")
        queue.add_done_callback(_report_crash)
        try:
            yield
        finally:
            stop.set()
            try:
                await queue
            finally:
                if owned:
                    await opened.aclose()

    return lifespan


def _report_crash(task: asyncio.Task[None]) -> None:
    """Say so when the queue stops by itself: submitted runs would wait for another
    process (or a restart) to claim them."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the run queue stopped", exc_info=task.exception())
