"""A store opened in the background: steps queued with `prepare` run before any other
use, every use waits for them (writes without blocking the event loop), and what kept the
store from opening is what every use raises."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from rlm_engine.store import SqlStore, open_store
from rlm_engine.store.deferred import DeferredStore
from rlm_engine.store.errors import StoreUnavailableError
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import JournalWrites, NewRun


def test_prepare_steps_run_first_and_uses_wait_for_them(tmp_path: Path) -> None:
    release = threading.Event()
    order: list[str] = []

    def opener() -> Store:
        assert release.wait(30)
        order.append("opened")
        return open_store(None, tmp_path)

    def record(store: Store) -> str:
        order.append("recorded")
        return store.create_run(NewRun(run_id="r1", question="q")).run_id

    deferred = DeferredStore(opener)
    recorded = deferred.prepare(record)
    assert not deferred.started  # nothing opens until asked
    deferred.start()
    with pytest.raises(RuntimeError, match="prepare steps come first"):
        deferred.prepare(record)
    release.set()
    run = deferred.get_run("r1")  # blocks until opened and prepared
    assert run is not None and recorded.result() == "r1"
    assert order == ["opened", "recorded"]
    deferred.close()


async def test_journal_writes_wait_for_the_store_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    release = threading.Event()

    def opener() -> Store:
        assert release.wait(30)
        return open_store(None, tmp_path)

    deferred = DeferredStore(opener)
    deferred.prepare(lambda store: store.create_run(NewRun(run_id="r1", question="q")))
    writing = asyncio.create_task(deferred.journal_writer.write(JournalWrites()))
    await asyncio.sleep(0)  # the loop keeps running while the store opens
    assert not writing.done() and deferred.started
    release.set()
    await asyncio.wait_for(writing, 30)
    called = deferred.journal_writer.call(lambda: "on the writer thread")
    assert await asyncio.wait_for(asyncio.wrap_future(called), 30) == "on the writer thread"
    await asyncio.to_thread(deferred.close)


async def test_an_opening_that_fails_fails_every_use_and_every_step() -> None:
    def opener() -> Store:
        raise StoreUnavailableError("cannot open the store at sqlite:///nowhere")

    deferred = DeferredStore(opener)
    step = deferred.prepare(lambda store: "never")
    with pytest.raises(StoreUnavailableError, match="nowhere"):
        await deferred.journal_writer.write(JournalWrites())
    with pytest.raises(StoreUnavailableError):
        step.result(30)
    with pytest.raises(StoreUnavailableError):
        deferred.get_run("r1")
    with pytest.raises(StoreUnavailableError):
        deferred.journal_writer.submit(JournalWrites()).result(30)
    deferred.close()


def test_a_failing_step_fails_the_store(tmp_path: Path) -> None:
    opened: list[SqlStore] = []

    def opener() -> Store:
        opened.append(open_store(None, tmp_path))
        return opened[-1]

    def refuse(store: Store) -> None:
        raise ValueError("refused")

    deferred = DeferredStore(opener)
    deferred.prepare(refuse)
    after = deferred.prepare(lambda store: "after")
    with pytest.raises(ValueError, match="refused"):
        deferred.opened()
    with pytest.raises(ValueError, match="refused"):
        after.result(30)
    deferred.close()
    assert len(opened) == 1  # opened once; what failed is not retried
    with pytest.raises(ValueError, match="refused"):
        deferred.get_run("r1")


def test_a_store_never_started_is_never_opened() -> None:
    def opener() -> Store:
        raise AssertionError("opened")

    deferred = DeferredStore(opener)
    deferred.close()
    assert not deferred.started
