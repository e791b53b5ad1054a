"""A store that opens in the background, once a run no longer waits for it.

Opening the SQL store (importing SQLAlchemy, connecting, checking the schema) costs a
few hundred milliseconds, and a new run needs none of it before its first model request
is on its way: that request needs only the engine and the HTTP client. `DeferredStore`
stands in for the store until then. `start` opens it on a thread; steps queued with
`prepare` (recording the run) run on that thread right after the store opens, before
anyone else may use it, so nothing reaches the store ahead of them: every other call
waits until the store is open and prepared (the journal's and the event sink's writes
without blocking the event loop), and fails with the error that stopped the opening or a
step.

The opening competes for the interpreter lock with whatever the process does meanwhile,
so it is started deliberately (`start`) when the process is about to wait; any access
starts it too, so nothing can wait for a store that never opens.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from rlm_engine.store.protocol import Store
    from rlm_engine.store.records import JournalWrites

T = TypeVar("T")


class DeferredStore:
    """The store ``opener`` returns, opened on a thread by `start` (or the first use).

    Attribute access other than `journal_writer`, `prepare`, `start`, `opened` and
    `close` is the opened store's, and blocks until it is ready: call it from a thread
    (`asyncio.to_thread`), as every store call should be. ``opener`` runs once; its
    error is what every later use raises."""

    def __init__(self, opener: Callable[[], Store]) -> None:
        self._opener = opener
        self._lock = threading.Lock()
        self._steps: list[Callable[[Store | None, BaseException | None], None]] = []
        self._ready: Future[Store] = Future()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.journal_writer = DeferredWriter(self)
        """Writes that wait for the store without blocking the event loop."""

    @property
    def started(self) -> bool:
        """Whether the store is opening or open (a `prepare` step is too late then)."""
        return self._thread is not None

    @property
    def ready(self) -> Future[Store]:
        """Resolves to the opened and prepared store, or to the error that stopped it."""
        return self._ready

    def prepare(self, step: Callable[[Store], T]) -> Future[T]:
        """Run ``step`` on the store right after it opens, before any other use; its
        result (or error) is the returned future's, which fails with the opening's error
        if the store cannot open. A failing step fails the store: what comes after it
        must not run on a store the step left unprepared."""
        done: Future[T] = Future()

        def run(store: Store | None, error: BaseException | None) -> None:
            if error is not None:
                done.set_exception(error)
                return
            try:
                done.set_result(step(cast("Store", store)))
            except BaseException as exc:
                done.set_exception(exc)
                raise

        with self._lock:
            if self._thread is not None:
                raise RuntimeError("the store is already opening; prepare steps come first")
            self._steps.append(run)
        return done

    def start(self) -> None:
        """Begin opening the store on a thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is not None:
                return
            if self._closed:
                self._ready.set_exception(RuntimeError("the store was closed before it opened"))
            self._thread = threading.Thread(target=self._open, name="rlm-store-open")
            self._thread.start()

    def opened(self) -> Store:
        """The store, once open and prepared (starting it if needed); raises what failed."""
        self.start()
        return self._ready.result()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.opened(), name)

    def close(self) -> None:
        """Close the store: one still opening is waited for; one never started stays
        unopened."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        thread.join()
        if self._ready.exception() is None:
            self._ready.result().close()

    def _open(self) -> None:
        if self._ready.done():
            self._fail_steps(self._ready.exception())
            return  # closed before it started
        try:
            store = self._opener()
        except BaseException as exc:
            self._fail_steps(exc)
            self._ready.set_exception(exc)
            return
        steps = list(self._steps)
        for index, step in enumerate(steps):
            try:
                step(store, None)
            except BaseException as exc:
                for later in steps[index + 1 :]:
                    later(None, exc)
                self._ready.set_exception(exc)
                store.close()
                return
        self._ready.set_result(store)

    def _fail_steps(self, error: BaseException | None) -> None:
        for step in self._steps:
            step(None, error or RuntimeError("the store did not open"))


class DeferredWriter:
    """`GroupCommitWriter`'s calls, made once the deferred store is ready."""

    def __init__(self, store: DeferredStore) -> None:
        self._store = store

    def submit(self, writes: JournalWrites) -> Future[None]:
        """Queue writes; the future resolves once they are committed (or with the error)."""
        return self._then(lambda store: store.journal_writer.submit(writes))

    async def write(self, writes: JournalWrites) -> None:
        """Wait for the store, then for ``writes`` to be committed."""
        ready = self._store.ready
        if not ready.done():
            self._store.start()
            await asyncio.wrap_future(ready)
        await ready.result().journal_writer.write(writes)

    def call(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the writer thread once the store is ready."""
        return self._then(lambda store: store.journal_writer.call(fn))

    def close(self) -> None:
        ready = self._store.ready
        if ready.done() and ready.exception() is None:
            ready.result().journal_writer.close()

    def _then(self, start: Callable[[Store], Future[T]]) -> Future[T]:
        result: Future[T] = Future()

        def chain(source: Future[T]) -> None:
            error = source.exception()
            if error is not None:
                result.set_exception(error)
            else:
                result.set_result(source.result())

        def when_ready(ready: Future[Store]) -> None:
            error = ready.exception()
            if error is not None:
                result.set_exception(error)
                return
            try:
                start(ready.result()).add_done_callback(chain)
            except BaseException as exc:
                result.set_exception(exc)

        self._store.start()
        self._store.ready.add_done_callback(when_ready)
        return result
