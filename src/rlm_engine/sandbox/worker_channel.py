"""Worker side of the wire: frame output through one writer thread, thread-safe calls
to the host, and which cell a calling thread speaks for (stdlib only).

All frames leave through a writer thread because Python runs signal handlers in the main
thread only: a ``KeyboardInterrupt`` raised in the middle of a write from the main thread
would leave half a frame on the pipe and corrupt the stream. ``queue.SimpleQueue.put`` is
implemented in C and is never split by a signal handler.
"""

from __future__ import annotations

import itertools
import os
import queue
import signal
import threading
from typing import Any

from rlm_engine.sandbox import wire


def exit_with_host() -> None:
    """The host is gone: take this worker and everything it started down with it."""
    try:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(70)


class HostKeyError(KeyError):
    """The host reported a missing key (``memory[k]`` for an unknown ``k``)."""


class _Pending:
    __slots__ = ("done", "message")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.message: dict[str, Any] = {}


class HostChannel:
    """Sends frames to the host and matches call results to waiting callers by id."""

    def __init__(self, out_fd: int) -> None:
        self._out_fd = out_fd
        self._outbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.owner = CellOwner()
        self._writer = threading.Thread(
            target=self._write_loop, name="rlm-wire-writer", daemon=True
        )

    def start(self) -> None:
        """Start the writer thread."""
        self._writer.start()

    def send(self, message: dict[str, Any]) -> None:
        """Queue one frame; raises ``TypeError``/``ValueError`` if it is not JSON-able."""
        self._outbox.put(wire.encode(message))

    def _write_loop(self) -> None:
        while True:
            frame = self._outbox.get()
            try:
                wire.write_all(self._out_fd, frame)
            except OSError:
                exit_with_host()

    def call(self, method: str, params: dict[str, Any]) -> Any:
        """Call a host method and block until its result arrives.

        A host-side failure raises ``RuntimeError`` (``HostKeyError`` for a missing key).
        Encoding errors surface as ``TypeError``/``ValueError`` before anything is sent.
        """
        with self._lock:
            call_id = next(self._ids)
        # The host refuses a call whose cell is not the one running (a left-over thread).
        cell = self.owner.of_caller()
        frame = wire.encode(
            {"type": "call", "id": call_id, "cell": cell, "method": method, "params": params}
        )
        pending = _Pending()
        with self._lock:
            self._pending[call_id] = pending
        try:
            self._outbox.put(frame)
            pending.done.wait()
        finally:
            # An interrupted caller abandons its request; a late result is then dropped.
            with self._lock:
                self._pending.pop(call_id, None)
        return _outcome(pending.message)

    def deliver(self, message: dict[str, Any]) -> None:
        """Hand a ``result`` frame from the host to the caller waiting for it."""
        call_id = message.get("id")
        if not isinstance(call_id, int):
            return
        with self._lock:
            pending = self._pending.pop(call_id, None)
        if pending is not None:
            pending.message = message
            pending.done.set()


def _outcome(message: dict[str, Any]) -> Any:
    if message.get("ok") is True:
        return message.get("value")
    error = str(message.get("error") or "the host call failed")
    if message.get("kind") == "missing":
        raise HostKeyError(error)
    raise RuntimeError(error)


# Which cell a thread speaks for. A thread a cell leaves running keeps running into later
# cells. Its ``FINAL`` or sub-call must not be taken as a later cell's, so every call frame
# and final value carries the id of the cell the calling thread belongs to: the main thread
# and threads started during the running cell belong to it; threads already alive when it
# began belong to an earlier one.


def _live_thread_ids() -> frozenset[int]:
    """Native ids of every thread of this process, including ones started with
    ``_thread.start_new_thread`` that ``threading`` never registered."""
    try:
        return frozenset(int(name) for name in os.listdir("/proc/self/task"))
    except (OSError, ValueError):
        return frozenset(
            thread.native_id for thread in threading.enumerate() if thread.native_id is not None
        )


class CellOwner:
    """Tracks the running cell and the threads that predate it."""

    def __init__(self) -> None:
        self._main = threading.main_thread().native_id
        self._older: frozenset[int] = frozenset()
        self.current: int | None = None
        self.stale_finals = 0

    def begin(self, cell_id: int) -> None:
        """A cell starts: every thread alive now belongs to an earlier cell."""
        self._older = _live_thread_ids() - {self._main or -1}
        self.current = cell_id

    def end(self) -> None:
        """The cell is over: no thread speaks for a cell until the next one begins."""
        self.current = None

    def of_caller(self) -> int | None:
        """The cell the calling thread speaks for, or None if it is left over."""
        if self.current is None:
            return None
        native = threading.get_native_id()
        if native != self._main and native in self._older:
            return None
        return self.current
