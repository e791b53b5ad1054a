"""The CLI's event sink: events gathered into few commits, all of them durable at drain."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rlm_engine.events import IterationStarted
from rlm_engine.service.event_sink import StoreEventSink
from rlm_engine.store.factory import open_store
from rlm_engine.store.records import NewRun


def test_events_are_gathered_into_one_commit_and_durable_after_drain(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "home")
    try:
        store.create_run(NewRun(run_id="r1", question="q"))
        sink = StoreEventSink(store)
        sink.run_ids.add("r1")
        writer = store.journal_writer
        before = writer.groups_committed

        async def go() -> None:
            for i in range(40):
                sink(IterationStarted(run_id="r1", iteration=i))
                sink(IterationStarted(run_id="other", iteration=i))  # not this sink's run
                await asyncio.sleep(0)  # events arrive over many loop steps
            await sink.drain()

        asyncio.run(go())
        stored = store.list_events("r1")
        assert [e.body["iteration"] for e in stored] == list(range(40))
        assert writer.groups_committed - before == 1
    finally:
        store.close()
