"""Group commit: one writer thread commits the journal writes of many callers together.

A fan-out of sub-calls finishes in waves; journaling each reply in its own transaction
made every caller queue for the store's write lock and pay a commit (and, on SQLite, an
fsync) of its own. Here callers hand their writes to one dedicated thread and wait:
coroutines with ``await writer.write(...)``, threads on the future of ``submit``. While
the thread commits one group, new writes queue up; the next group takes everything
queued, in one transaction (`Store.write_journal`). Nobody waits for a timer: a lone
write is committed at once, and a burst shares commits.

Journal writes (model calls, cells) are committed ahead of queued events, which are
committed in groups of their own. A caller is released only once its group is committed
(durable). If the group's transaction fails, every caller of that group gets the error;
the thread goes on with the next group. Reads that must not overtake queued writes
(loading a run's journal) run on the same thread with `call`.

With ``settle_s`` (the SQLite store, whose commit is a local fsync), a journal write queued
from an event loop also makes that loop wait, in its next callback and for at most
``settle_s``, until the journal writes queued so far are committed: callbacks the loop
runs after it (the next request of a fan-out whose slot the caller gave back just before)
start only once the replies before them are durable, and a reply the engine has read is
committed within a loop step (a crash re-pays the calls still in flight and the replies
of the step it interrupts). The wait gives up the GIL, so the
writer commits at once instead of taking the GIL from a busy loop at switch intervals. A
wait that runs out (another process holds the database, a checkpoint is slow) turns the
waits off for `SETTLE_PAUSE_S`, so a locked database costs the loop a bounded share of its
time; nothing else changes: callers still wait for their own group.

With ``events_slice``, a group of more events than that is committed in slices of that
many, and journal writes that queued meanwhile are committed between two slices: a slow
commit of a thousand events (a batch of a thousand sub-calls starts with as many events)
would hold up the callers waiting on the journal, and a loop settling on them. Such a
group is then no longer one transaction: a crash can keep the first slices (their
numbering has no gaps), and an error fails the group's callers and its later slices.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from rlm_engine.store.records import JournalWrites
from rlm_engine.store.write_errors import store_write_error

if TYPE_CHECKING:
    from rlm_engine.events import Event

T = TypeVar("T")

# Writes one group takes at most (a deep backlog is committed in several transactions).
MAX_GROUP = 4096
# Events one events-only group takes at most: a journal write queued meanwhile waits for it.
EVENTS_GROUP = 128
# Events per transaction of a long events-only group, for stores that ask for slices.
EVENTS_SLICE = 256
# How long a loop waits at most for its journal writes to be committed (`settle_s`): a few
# local fsyncs; a database locked by another process is not waited for.
SETTLE_S = 0.025
# How long the waits stay off after one ran out.
SETTLE_PAUSE_S = 0.1


@dataclass(frozen=True, slots=True)
class _Write:
    writes: JournalWrites
    future: Future[None] | None = None
    """A thread's waiter (`submit`)."""
    loop: asyncio.AbstractEventLoop | None = None
    waiter: asyncio.Future[None] | None = None
    """A coroutine's waiter (`write`), resolved on its loop."""


@dataclass(frozen=True, slots=True)
class _Call:
    fn: Callable[[], Any]
    future: Future[Any]


class GroupCommitWriter:
    """The writer thread of one store. Thread-safe; `submit` and `call` never block."""

    def __init__(
        self,
        commit: Callable[[JournalWrites], None],
        *,
        name: str = "rlm-journal-writer",
        events_slice: int | None = None,
        settle_s: float | None = None,
    ) -> None:
        self._commit = commit
        self._name = name
        self._events_slice = events_slice
        self._settle_s = settle_s
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        self._settled = threading.Condition(lock)
        """Notified when journal writes were committed (`_settle` waits on it)."""
        self._urgent = 0
        """Journal writes (not events alone) queued and not yet committed."""
        self._settling: set[asyncio.AbstractEventLoop] = set()
        self._paused_until = 0.0
        """`time.monotonic()` before which `_settle` does not wait (one ran out)."""
        self._queue: list[_Write | _Call] = []
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        self.groups_committed = 0
        """Transactions committed (for tests and benchmarks)."""
        self.groups_failed = 0
        self.writes_committed = 0
        self.settles_run_out = 0

    def submit(self, writes: JournalWrites) -> Future[None]:
        """Queue writes; the future resolves once they are committed (or with the error)."""
        future: Future[None] = Future()
        self._enqueue(_Write(writes, future))
        return future

    async def write(self, writes: JournalWrites) -> None:
        """Queue writes and wait until they are committed (or raise the group's error).

        The callers of one group on one event loop are woken together, with one
        ``call_soon_threadsafe``: each wake-up is a write to the loop's socket, for which the
        writer thread gives up the GIL and then waits to get it back from the busy loop."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._enqueue(_Write(writes, loop=loop, waiter=waiter))
        if self._settle_s is not None and loop not in self._settling and not _events_only(writes):
            self._settling.add(loop)
            loop.call_soon(self._settle, loop)
        await waiter

    def _settle(self, loop: asyncio.AbstractEventLoop) -> None:
        """Block the loop until the journal writes queued so far are committed, or for at
        most ``settle_s`` (see the module's docstring)."""
        self._settling.discard(loop)
        with self._cond:
            if time.monotonic() < self._paused_until:
                return
            if not self._settled.wait_for(lambda: self._urgent == 0, self._settle_s):
                self._paused_until = time.monotonic() + SETTLE_PAUSE_S
                self.settles_run_out += 1

    def call(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the writer thread, after every write queued before it."""
        future: Future[T] = Future()
        self._enqueue(_Call(fn, future))
        return future

    def close(self) -> None:
        """Commit what is queued, then stop the thread. Later submits fail."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _enqueue(self, item: _Write | _Call) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the store's journal writer is closed")
            if self._pid != os.getpid():  # a forked child starts its own thread
                self._pid, self._thread, self._queue = os.getpid(), None, []
                self._urgent, self._settling, self._paused_until = 0, set(), 0.0
            self._queue.append(item)
            if isinstance(item, _Write) and not _events_only(item.writes):
                self._urgent += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def _take(self) -> list[_Write | _Call] | None:
        """The next group: a `_Call` alone, or writes queued before the next `_Call`.
        Journal writes go first, in a group of their own: a caller waits for the journal,
        while events (the audit trail, nobody waits on them but `drain`) can wait a group."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            head = self._queue[0]
            if isinstance(head, _Call):
                return [self._queue.pop(0)]
            segment: list[_Write] = []
            for item in self._queue:
                if isinstance(item, _Call):
                    break  # a read runs after the writes queued before it
                segment.append(item)
            urgent = [w for w in segment if not _events_only(w.writes)]
            chosen = _capped(urgent or segment, EVENTS_GROUP if not urgent else MAX_GROUP)
            ids = {id(w) for w in chosen}
            self._queue = [item for item in self._queue if id(item) not in ids]
            return list(chosen)

    def _run(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            first = taken[0]
            if isinstance(first, _Call):
                _settle(first.future, first.fn)
            else:
                self._commit_group([item for item in taken if isinstance(item, _Write)])

    def _commit_group(self, group: list[_Write]) -> None:
        # A caller that stopped waiting (cancelled) still gets its writes committed.
        waiting = [
            w.future
            for w in group
            if w.future is not None and w.future.set_running_or_notify_cancel()
        ]
        merged = _merge([w.writes for w in group])
        limit = self._events_slice
        if limit is not None and _events_only(merged) and len(merged.events) > limit:
            error = self._commit_slices(merged.events, limit)
        else:
            error = self._commit_one(merged)
        urgent = sum(1 for w in group if not _events_only(w.writes))
        if urgent:
            with self._cond:
                self._urgent -= urgent
                self._settled.notify_all()
        for future in waiting:
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for w in group:
            if w.loop is not None and w.waiter is not None:
                by_loop.setdefault(w.loop, []).append(w.waiter)
        for loop, waiters in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_wake, waiters, error)
        if error is not None and not isinstance(error, Exception):
            raise error

    def _commit_one(self, writes: JournalWrites) -> BaseException | None:
        try:
            self._commit(writes)
        except BaseException as exc:
            self.groups_failed += 1
            # Callers see a typed store failure (disk full, read-only, locked), whatever
            # the database or the file system raised.
            mapped = store_write_error(exc)
            if mapped is not None:
                mapped.__cause__ = exc
                return mapped
            return exc
        self.groups_committed += 1
        self.writes_committed += len(writes)
        return None

    def _commit_slices(self, events: Sequence[Event], limit: int) -> BaseException | None:
        for start in range(0, len(events), limit):
            if start:
                try:
                    self._commit_queued_journal()
                except BaseException as exc:
                    return exc
            error = self._commit_one(JournalWrites(events=events[start : start + limit]))
            if error is not None:
                return error
        return None

    def _commit_queued_journal(self) -> None:
        """Commit, as one group, the journal writes queued (before any `_Call`) that carry no
        events (events keep their queue order)."""
        with self._cond:
            segment: list[_Write] = []
            for item in self._queue:
                if isinstance(item, _Call):
                    break
                if not _events_only(item.writes) and not item.writes.events:
                    segment.append(item)
            chosen = _capped(segment, MAX_GROUP)
            ids = {id(w) for w in chosen}
            self._queue = [item for item in self._queue if id(item) not in ids]
        if chosen:
            self._commit_group(chosen)


def _wake(waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for waiter in waiters:
        if waiter.done():  # the caller was cancelled
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)


def _events_only(writes: JournalWrites) -> bool:
    return not (writes.calls or writes.cell_starts or writes.cell_finishes)


def _capped(writes: list[_Write], limit: int) -> list[_Write]:
    chosen: list[_Write] = []
    count = 0
    for w in writes:
        if chosen and count + len(w.writes) > limit:
            break
        chosen.append(w)
        count += len(w.writes)
    return chosen


def _settle(future: Future[Any], fn: Callable[[], Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = fn()
    except Exception as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _merge(batches: list[JournalWrites]) -> JournalWrites:
    if len(batches) == 1:
        return batches[0]
    return JournalWrites(
        calls=[c for b in batches for c in b.calls],
        cell_starts=[c for b in batches for c in b.cell_starts],
        cell_finishes=[c for b in batches for c in b.cell_finishes],
        events=[e for b in batches for e in b.events],
    )
