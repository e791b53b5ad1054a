"""A run's stored events, read from the store as they are recorded.

Readers always read the store (`Store.list_events(after_seq=...)`), never a queue: a slow
reader costs a cursor, not memory, and a reader that reconnects from any sequence number
sees every event once. When this process records events it wakes the readers of that run
at once; a run executing in another process is polled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from rlm_engine.store.protocol import Store
from rlm_engine.store.records import Run, StoredEvent

POLL_S = 0.5
STILL_GOING = frozenset({"queued", "running"})


class EventFeed:
    """Wake-ups per run: `wake` after a batch of a run's events is committed."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def wake(self, run_id: str) -> None:
        event = self._events.pop(run_id, None)
        if event is not None:
            event.set()

    def armed(self, run_id: str) -> asyncio.Event:
        """The event the next `wake` of ``run_id`` sets (take it before reading the store,
        so a commit between the read and the wait is not missed)."""
        return self._events.setdefault(run_id, asyncio.Event())


def _finished(run: Run | None) -> bool:
    """Whether no more events will be recorded for the run: it is gone, or it ended and
    nothing will resume it by itself (an interrupted run the queue resumes goes on)."""
    if run is None:
        return True
    if run.status in STILL_GOING:
        return False
    return not (run.status == "interrupted" and run.auto_resume)


async def follow_event_batches(
    store: Store,
    feed: EventFeed,
    run_id: str,
    *,
    after_seq: int = -1,
    follow: bool = True,
    poll_s: float = POLL_S,
    local: Callable[[], bool] = lambda: False,
) -> AsyncIterator[list[StoredEvent]]:
    """The run's events after ``after_seq``, in order, each once, as the store hands them
    out (one non-empty list per read, so a stream can send each list in one write); with
    ``follow``, then the ones recorded later, until the run has ended and every event is
    delivered. ``local()`` says whether this process executes the run (then it wakes the
    readers, and the poll is only a fallback)."""
    seq = after_seq
    while True:
        woken = feed.armed(run_id)
        batch = await asyncio.to_thread(store.list_events, run_id, after_seq=seq)
        if batch:
            seq = batch[-1].seq
            yield batch
        if not follow:
            return
        if batch and (woken.is_set() or not local()):
            continue
        if batch:
            # Nothing committed since the read began (a commit would have woken us), and
            # the run's end wakes us too: wait for the next batch without reading the store
            # once more and asking whether the run ended (two thread hops per commit and
            # reader, which a busy server pays for every run it streams).
            await _wait(woken, poll_s * 10)
            continue
        run = await asyncio.to_thread(store.get_run, run_id)
        if _finished(run):
            # Events are committed before the outcome is recorded: read once more, for
            # those committed between the read above and the outcome.
            last = await asyncio.to_thread(store.list_events, run_id, after_seq=seq)
            if last:
                yield last
            return
        await _wait(woken, poll_s * 10 if local() else poll_s)


async def follow_events(
    store: Store,
    feed: EventFeed,
    run_id: str,
    *,
    after_seq: int = -1,
    follow: bool = True,
    poll_s: float = POLL_S,
    local: Callable[[], bool] = lambda: False,
) -> AsyncIterator[StoredEvent]:
    """`follow_event_batches`, one event at a time."""
    async for batch in follow_event_batches(
        store, feed, run_id, after_seq=after_seq, follow=follow, poll_s=poll_s, local=local
    ):
        for event in batch:
            yield event


async def _wait(woken: asyncio.Event, at_most_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(at_most_s):
            await woken.wait()
