"""A warm pool of started, isolated local workers.

Starting an isolated worker costs tens of milliseconds (mostly the interpreter's own
start); a pooled one is handed out in well under a millisecond. Workers wait without a
context and without an owner: on acquisition the pool binds the owner's host handler and
tools, and the engine then attaches the context as for any sandbox. A worker is used by
one owner only and is closed afterwards (variables never leak between runs); the pool
refills itself in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rlm_engine.errors import SandboxDied
from rlm_engine.sandbox.base import (
    CellClock,
    CellResult,
    ContextMeta,
    ContextValue,
    HostHandler,
    NamespaceSnapshot,
)
from rlm_engine.sandbox.context_meta import LAZY_CONTEXT_BYTES, describe_context
from rlm_engine.sandbox.local import LocalSandbox

log = logging.getLogger("rlm_engine.sandbox")


async def _unowned(method: str, params: Mapping[str, Any]) -> Any:
    raise RuntimeError(f"{method}: this pooled sandbox has no owner yet")


class WarmPool:
    """Keeps ``size`` started sandboxes made by ``make(handler)`` ready.

    The pool belongs to the event loop of its first ``acquire``; if a later call comes
    from another loop (a new ``asyncio.run``), the old workers are killed and the pool
    refills in the new loop.
    """

    def __init__(self, make: Callable[[HostHandler], LocalSandbox], size: int) -> None:
        if size < 0:
            raise ValueError("pool size must not be negative")
        self._make = make
        self.size = size
        self._ready: list[LocalSandbox] = []
        self._filling: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.hits = 0
        self.misses = 0

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            for box in self._ready:
                box.kill_now()  # their pipes belong to a loop that is gone
            self._ready.clear()
            self._filling.clear()
            self._loop = loop

    def _refill(self) -> None:
        missing = self.size - len(self._ready) - len(self._filling)
        for _ in range(max(0, missing)):
            task = asyncio.get_running_loop().create_task(self._start_one())
            self._filling.add(task)
            task.add_done_callback(self._filling.discard)

    async def _start_one(self) -> None:
        box = self._make(_unowned)
        try:
            await box.start()
        except Exception as exc:  # a failed start must not kill the pool; acquire cold-starts
            log.warning("the sandbox pool could not start a worker: %s", exc)
            await box.close()
            return
        if self._closed:
            await box.close()
        else:
            self._ready.append(box)

    async def fill(self) -> None:
        """Start workers until the pool is full and wait for them."""
        self._bind_loop()
        self._refill()
        await asyncio.gather(*list(self._filling), return_exceptions=True)

    async def acquire(self, handler: HostHandler, tools: Sequence[str]) -> LocalSandbox:
        """A started sandbox serving ``handler`` with ``tools``; cold-started when the
        pool is empty. The pool refills in the background either way."""
        if self._closed:
            raise SandboxDied("the sandbox pool is closed")
        self._bind_loop()
        box: LocalSandbox | None = None
        while self._ready and box is None:
            candidate = self._ready.pop(0)
            if candidate.alive:
                box = candidate
            else:
                await candidate.close()
        self._refill()
        if box is None:
            self.misses += 1
            box = self._make(handler)
            await box.start()
        else:
            self.hits += 1
            box.set_handler(handler)
        if tools:
            await box.set_tools(tools)
        return box

    async def close(self) -> None:
        """Close every waiting worker and stop refilling."""
        self._closed = True
        for task in list(self._filling):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*list(self._filling), return_exceptions=True)
        boxes, self._ready = self._ready, []
        await asyncio.gather(*(box.close() for box in boxes), return_exceptions=True)


class PooledSandbox:
    """A ``Sandbox`` whose worker comes from a ``WarmPool`` at ``start()``."""

    def __init__(
        self,
        pool: WarmPool,
        handler: HostHandler,
        tools: Sequence[str],
        *,
        lazy_context_bytes: int = LAZY_CONTEXT_BYTES,
    ) -> None:
        self._pool = pool
        self._handler = handler
        self._tools = tuple(tools)
        self._lazy_bytes = lazy_context_bytes
        self._box: LocalSandbox | None = None
        self._closed = False

    @property
    def inner(self) -> LocalSandbox | None:
        """The pooled worker once started."""
        return self._box

    @property
    def alive(self) -> bool:
        return not self._closed and self._box is not None and self._box.alive

    async def start(self) -> None:
        if self._closed:
            raise SandboxDied("the sandbox is closed; create a new one")
        if self._box is None:
            self._box = await self._pool.acquire(self._handler, self._tools)

    def _require(self) -> LocalSandbox:
        if self._box is None:
            raise SandboxDied("the sandbox is not started; call start() first")
        return self._box

    async def load_context(self, value: ContextValue) -> ContextMeta:
        return await self._require().load_context(value)

    def describe_context(self, value: ContextValue) -> ContextMeta | None:
        """See ``LocalSandbox.describe_context``."""
        return describe_context(value, lazy_over_bytes=self._lazy_bytes)

    async def execute(self, code: str, *, timeout_s: float) -> CellResult:
        return await self._require().execute(code, timeout_s=timeout_s)

    async def execute_at(
        self, code: str, *, clock: float | CellClock, timeout_s: float
    ) -> CellResult:
        return await self._require().execute_at(code, clock=clock, timeout_s=timeout_s)

    async def list_vars(self) -> dict[str, str]:
        return await self._require().list_vars()

    async def snapshot(self, *, max_bytes: int) -> NamespaceSnapshot:
        return await self._require().snapshot(max_bytes=max_bytes)

    async def restore(self, data: bytes) -> None:
        await self._require().restore(data)

    async def close(self) -> None:
        self._closed = True
        if self._box is not None:
            await self._box.close()
