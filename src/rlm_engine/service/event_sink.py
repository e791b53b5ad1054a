"""A run's events appended to the store in batches, off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from rlm_engine.events import Event
from rlm_engine.store.errors import StoreError
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import JournalWrites
from rlm_engine.store.write_errors import StoreWriteError


class StoreEventSink:
    """Appends events of the given runs to the store in batches, off the event loop,
    through the store's group-commit writer.

    The journal is what makes a run resumable and is written before each step; events are
    the audit trail and tolerate losing the last fraction of a second in a crash, so they
    are gathered for up to ``FLUSH_EVERY_S`` and committed together (a commit per event
    burst would cost a run's root turns as much as their own journal commits).

    ``on_commit`` is called on the loop after each batch is durable: readers of the run's
    events (`RunService.events`) wake up and read the new rows from the store."""

    FLUSH_EVERY_S = 0.1

    def __init__(self, store: Store, on_commit: Callable[[], None] | None = None) -> None:
        self.store = store
        self.run_ids: set[str] = set()
        self._on_commit = on_commit
        self._buffer: list[Event] = []
        self._task: asyncio.Task[None] | None = None
        self._now = asyncio.Event()  # set while draining: flush without waiting
        self.error: StoreError | None = None
        """The first failed write; `drain` raises it, so the run fails rather than end
        without its audit trail."""
        self.lost = 0
        """Events that could not be recorded."""

    def __call__(self, event: Event) -> None:
        if event.run_id not in self.run_ids:
            return
        self._buffer.append(event)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._buffer:
            if not self._now.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.FLUSH_EVERY_S):
                        await self._now.wait()
            batch, self._buffer = self._buffer, []
            try:
                await self.store.journal_writer.write(JournalWrites(events=batch))
            except Exception as exc:
                self._failed(exc, len(batch))
                continue
            if self._on_commit is not None:
                self._on_commit()

    def _failed(self, exc: Exception, count: int) -> None:
        self.lost += count
        if self.error is not None:
            return
        if isinstance(exc, StoreError):
            self.error = exc
        else:
            self.error = StoreWriteError(f"the store could not record events: {exc}")
            self.error.__cause__ = exc

    async def drain(self) -> None:
        """Commit every event received so far, now. Raises `StoreError` (naming how many
        events were lost) if any event could not be recorded."""
        self._now.set()
        try:
            if self._task is not None:
                await self._task
            await self._flush()
        finally:
            self._now.clear()
        if self.error is not None:
            raise StoreWriteError(
                f"{self.lost} event(s) of the audit trail could not be recorded: {self.error}"
            ) from self.error
