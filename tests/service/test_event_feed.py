"""Following a run's events: each once, in order, and for a run this process executes,
one store read per commit (the commit wakes the reader; nothing is polled meanwhile)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

from rlm_engine.service.event_feed import EventFeed, follow_events
from rlm_engine.store.records import Run, RunTotals, StoredEvent


class CountingStore:
    """The two reads `follow_events` makes, over a list of events and a run status."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.events: list[StoredEvent] = []
        self.event_reads = 0
        self.run_reads = 0
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            start = len(self.events)
            self.events += [
                StoredEvent(self.run.run_id, seq, "x", "root", 0, 0.0, {})
                for seq in range(start, start + count)
            ]

    def list_events(self, run_id: str, *, after_seq: int = -1) -> list[StoredEvent]:
        with self._lock:
            self.event_reads += 1
            return [e for e in self.events if e.seq > after_seq]

    def get_run(self, run_id: str) -> Run | None:
        self.run_reads += 1
        return self.run


def running_run() -> Run:
    return Run(
        run_id="r",
        session=None,
        question="q",
        model="m",
        sub_model="m",
        settings={},
        status="running",
        stop_reason=None,
        detail=None,
        answer=None,
        totals=RunTotals(),
        context_hash=None,
        created_at=0.0,
        updated_at=0.0,
        finished_at=None,
        heartbeat_at=None,
        owner_host=None,
        owner_pid=None,
        attempt=1,
        last_event_seq=-1,
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_a_local_runs_reader_reads_once_per_commit_and_ends_with_the_run() -> None:
    store = CountingStore(running_run())
    feed = EventFeed()
    executing = True
    seen: list[int] = []
    store.add(2)

    async def read() -> None:
        async for event in follow_events(
            store,  # type: ignore[arg-type]
            feed,
            "r",
            poll_s=30.0,
            local=lambda: executing,
        ):
            seen.append(event.seq)

    reader = asyncio.create_task(read())
    await settle()
    assert seen == [0, 1]
    # Parked until the next commit: no second read of the events, no look at the run.
    assert (store.event_reads, store.run_reads) == (1, 0)
    store.add(3)
    feed.wake("r")
    await settle()
    assert seen == [0, 1, 2, 3, 4]
    assert (store.event_reads, store.run_reads) == (2, 0)
    store.add(1)
    store.run = dataclasses.replace(store.run, status="completed")
    executing = False
    feed.wake("r")  # the run's end wakes its readers
    await asyncio.wait_for(reader, 30)
    assert seen == list(range(6))
