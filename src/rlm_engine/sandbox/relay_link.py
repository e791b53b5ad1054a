"""Host side of a worker that runs somewhere else (a Ray actor, a Modal sandbox).

The remote place runs the same worker program with the same framed protocol; a ``Relay``
moves its bytes. ``RelayedWorker`` is the host's ``WorkerProcess`` with the pipes and
signals replaced by that relay, so call serving, frame checks, the hard output cap and
death handling are the very code the local backend uses. ``RelayedSandbox`` is the
``LocalSandbox`` API (deadlines, soft interrupt then hard kill, ``killed`` results) on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, cast

from rlm_engine.errors import ContextError, SandboxDied, SandboxError
from rlm_engine.sandbox import cell_clock, wire
from rlm_engine.sandbox.base import CellClock, CellResult, ContextMeta, ContextValue, HostHandler
from rlm_engine.sandbox.host_process import WorkerProcess
from rlm_engine.sandbox.host_protocol import parse_context_meta
from rlm_engine.sandbox.limits import Limits
from rlm_engine.sandbox.local import LocalSandbox
from rlm_engine.sandbox.raw_output import RawOutput

ContextSpec = dict[str, Any]


class RelayLost(Exception):
    """The remote place holding the worker is gone (actor died, sandbox terminated)."""


class RelaySink(Protocol):
    """Where a relay delivers what the worker wrote, in the order it wrote it."""

    def output(self, data: bytes) -> None: ...

    def frames(self, data: bytes) -> None: ...


class Relay(Protocol):
    """Transport to one remote worker. Bytes are opaque here: framing stays end to end."""

    async def run(self, sink: RelaySink) -> int | None:
        """Deliver the worker's output and frames until it exits; return its exit status
        (``None`` if unknown). Raise ``RelayLost`` when the remote place is gone."""
        ...

    async def send(self, data: bytes) -> None:
        """Bytes for the worker's protocol input; called in order, one call at a time."""
        ...

    async def interrupt(self, worker_pid: int | None) -> None:
        """Soft interrupt (SIGINT) of the worker; ``worker_pid`` as its ready frame said."""
        ...

    def kill(self) -> None:
        """Start a hard kill of the worker. Must not block or need an event loop."""
        ...

    async def close(self) -> None:
        """Tear the remote place down for good (idempotent)."""
        ...

    def abandon(self) -> None:
        """Best-effort teardown without an event loop (idempotent)."""
        ...


class _RemoteExit:
    """All ``WorkerProcess`` reads of a process it did not spawn: its ``returncode``."""

    pid: int | None = None
    returncode: int | None = None


def _as_process(stand_in: _RemoteExit) -> asyncio.subprocess.Process:
    # WorkerProcess only reads ``returncode`` of its process once ``spawn`` is replaced
    # (as here); the stand-in carries the remote worker's exit status.
    return cast(asyncio.subprocess.Process, stand_in)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class RelayedWorker(WorkerProcess):
    """A ``WorkerProcess`` whose worker runs behind a ``Relay``: started with ``attach``,
    fed by the relay instead of pipe readers, signalled through the relay."""

    def __init__(
        self,
        handler: HostHandler,
        tools: frozenset[str],
        raw: RawOutput,
        *,
        hard_output_chars: int = 0,
    ) -> None:
        super().__init__(handler, tools, raw, hard_output_chars=hard_output_chars)
        self._relay: Relay | None = None
        self._exit = _RemoteExit()
        self._frame_chunks: deque[bytes] = deque()
        self._output_chunks: deque[bytes] = deque()
        # Frames for the worker and interrupt markers (None), sent strictly in order so
        # an interrupt can never overtake the command it is meant to stop.
        self._outbox: deque[bytes | None] = deque()
        self._outbox_ready = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._relay_done = False
        self._kill_sent = False
        self.remote_pid: int | None = None
        """The worker's pid in its own place, as its ready frame reported it."""

    async def spawn(
        self, argv: Sequence[str], *, cwd: Path, env: dict[str, str], stdio: bool = False
    ) -> None:
        raise TypeError("a relayed worker is started remotely; use attach()")

    def attach(self, relay: Relay) -> None:
        """Serve the worker behind ``relay`` (already launched) from now on."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._relay = relay
        self._proc = _as_process(self._exit)
        self._ready = loop.create_future()
        self._ready.add_done_callback(_retrieve)
        self._exit_watch = loop.create_task(self._pump(relay))
        self._sender = loop.create_task(self._send_loop(relay))

    async def _pump(self, relay: Relay) -> None:
        code: int | None = None
        try:
            code = await relay.run(self)
        except RelayLost as exc:
            if not self.death_reason:
                self.death_reason = str(exc)
        except Exception as exc:  # a broken transport ends this worker, never the host
            if not self.death_reason:
                self.death_reason = f"the connection to the remote worker failed: {exc}"
        self._relay_done = True
        self._exit.returncode = code
        self._raw.finish()
        self._on_exit(code)

    async def _send_loop(self, relay: Relay) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self._outbox:
                batch = bytearray()
                while self._outbox and self._outbox[0] is not None:
                    batch += cast(bytes, self._outbox.popleft())
                try:
                    if batch:
                        await relay.send(bytes(batch))
                    if self._outbox and self._outbox[0] is None:
                        self._outbox.popleft()
                        await relay.interrupt(self.remote_pid)
                except Exception:  # the pump reports the remote side's death
                    self._outbox.clear()
                    return

    async def shutdown(self) -> None:
        await super().shutdown()
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    def locate_worker(self) -> None:
        """Nothing to locate: signals go through the relay, never to a local pid."""

    # -- what the relay delivers -------------------------------------------------------

    def output(self, data: bytes) -> None:
        """``RelaySink``: raw output of the worker."""
        self._output_chunks.append(data)
        while self._read_output():
            pass

    def frames(self, data: bytes) -> None:
        """``RelaySink``: protocol bytes from the worker."""
        self._frame_chunks.append(data)
        while self._read_frames():
            pass

    def _read_frames(self) -> bool:
        if not self._frame_chunks:
            return False
        data = self._frame_chunks.popleft()
        try:
            messages = self._decoder.feed(data)
        except wire.WireError as exc:
            self._frame_chunks.clear()
            self.violation(str(exc))
            return False
        for message in messages:
            pid = message.get("pid")
            if message.get("type") == "ready" and isinstance(pid, int) and self.remote_pid is None:
                self.remote_pid = pid
            self._dispatch(message)
        return True

    def _read_output(self) -> bool:
        if not self._output_chunks:
            return False
        data = self._output_chunks.popleft()
        self._raw.feed(data)
        self._raw_seen += len(data)
        if self._hard_output and self._raw_seen > self._hard_output and self.running:
            self.death_reason = (
                f"the cell wrote more than {self._hard_output:,} bytes to its standard output "
                "(the hard output cap), so the sandbox was killed"
            )
            self._signal(signal.SIGKILL)
        return True

    # -- what the host sends -----------------------------------------------------------

    def _write(self, message: dict[str, Any]) -> None:
        frame = wire.encode(message)
        if not self._relay_done:
            self._outbox.append(frame)
            self._outbox_ready.set()

    def _signal(self, signum: signal.Signals) -> None:
        if self._relay_done or self._relay is None:
            return  # the remote side reaps what the worker left behind itself
        if signum == signal.SIGINT:
            self._outbox.append(None)
            self._outbox_ready.set()
        elif not self._kill_sent:
            self._kill_sent = True
            self._relay.kill()


class RelayedSandbox(LocalSandbox):
    """A ``LocalSandbox`` whose worker runs behind a ``Relay``. Subclasses open the relay
    and place contexts where the worker can read them."""

    def __init__(
        self,
        handler: HostHandler,
        *,
        tools: Sequence[str] = (),
        limits: Limits | None = None,
        output_cap_chars: int = 1_000_000,
        kill_grace_s: float = 0.5,
        lazy_context_bytes: int = 64 * 1024 * 1024,
        start_timeout_s: float = 120.0,
    ) -> None:
        super().__init__(
            handler,
            tools=tools,
            limits=limits,
            output_cap_chars=output_cap_chars,
            kill_grace_s=kill_grace_s,
            lazy_context_bytes=lazy_context_bytes,
            isolation="none",  # not used: the remote place decides its own isolation
        )
        if start_timeout_s <= 0:
            raise ValueError("start_timeout_s must be positive")
        self._start_timeout = start_timeout_s
        self._relay: Relay | None = None
        self.remote_isolation: str | None = None
        """What confines the worker in its remote place, once started."""

    async def _open_relay(self) -> Relay:
        """Create the remote place, launch the worker there, return its relay."""
        raise NotImplementedError

    async def _stage(self, value: ContextValue, index: int) -> tuple[ContextSpec, bool]:
        """Place a context where the worker reads it; return its spec and whether the
        staged copy may be removed once the worker has loaded it."""
        raise NotImplementedError

    async def _unstage(self, index: int) -> None:
        """Remove a staged context the worker no longer needs."""
        raise NotImplementedError

    @property
    def isolation_level(self) -> Any:
        return self.remote_isolation

    async def start(self) -> None:
        """Create the remote place and wait for the worker's ready frame."""
        if self._closed:
            raise SandboxDied("the sandbox is closed; create a new one")
        if self._link is not None:
            return
        loop = asyncio.get_running_loop()
        began = loop.time()
        link = RelayedWorker(
            self._handler,
            frozenset(self._tools),
            RawOutput(self._cap),
            hard_output_chars=self._options.limits.hard_output_chars,
        )
        self._link = link
        try:
            self._relay = await asyncio.wait_for(self._open_relay(), self._start_timeout)
            link.attach(self._relay)
            await link.wait_ready(max(1.0, self._start_timeout - (loop.time() - began)))
        except BaseException:
            await self.close()
            raise
        self.startup_s = loop.time() - began

    async def close(self) -> None:
        """Stop the worker and tear the remote place down. Idempotent."""
        if self._closed:
            return
        await super().close()
        if self._relay is not None:
            await self._relay.close()

    def kill_now(self) -> None:
        super().kill_now()
        if self._relay is not None:
            self._relay.abandon()

    async def execute_at(
        self, code: str, *, clock: float | CellClock, timeout_s: float
    ) -> CellResult:
        """The clock in setup cells of its own: the worker at the other end may be an
        installation that predates the clock in the exec command."""
        started = await self.execute(cell_clock.setup_code(clock), timeout_s=10.0)
        if started.status != "ok":
            raise SandboxError(f"could not set the clock of the REPL: {started.error}")
        result = await self.execute(code, timeout_s=timeout_s)
        if not isinstance(clock, CellClock) or result.status not in ("ok", "error"):
            return result
        finished = await self.execute(cell_clock.FINISH_CODE, timeout_s=10.0)
        return replace(result, clock_reads=cell_clock.finished_reads(finished.output))

    def describe_context(self, value: ContextValue) -> ContextMeta | None:
        """``None``: the context is staged where the worker runs, which may see other
        files than this host."""
        return None

    async def load_context(self, value: ContextValue) -> ContextMeta:
        """Stage ``value`` in the worker's place, then load it there (see ``_stage``)."""
        self._require_link()
        self._contexts += 1
        index = self._contexts
        spec, transient = await self._stage(value, index)
        try:
            async with self._lock:
                link = self._require_link()
                reply = await link.wait(link.request("load_context", spec=spec), None)
            assert reply is not None  # without a deadline only a reply or SandboxDied ends it
            if reply.get("ok") is not True:
                raise ContextError(f"the context could not be loaded: {reply.get('error')}")
        finally:
            if transient:
                # The worker holds the value in memory now; the staged copy only costs disk.
                with contextlib.suppress(Exception):
                    await self._unstage(index)
        return self._checked(parse_context_meta, reply.get("value"))
