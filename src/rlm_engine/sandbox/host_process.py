"""Host side of one worker process: pipes, frames, host calls, signals and death.

Everything here runs on the host's event loop. Frames and raw output are read with
``add_reader`` on non-blocking pipes, so the host keeps serving the worker's calls while a
cell runs and drains its stdout even when nobody is waiting for a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlm_engine.errors import SandboxDied, SandboxError
from rlm_engine.sandbox import wire
from rlm_engine.sandbox.base import HostHandler
from rlm_engine.sandbox.host_protocol import (
    Call,
    InvalidCall,
    ProtocolViolation,
    as_object,
    frame_id,
    parse_call,
)
from rlm_engine.sandbox.raw_output import RawOutput

_log = logging.getLogger(__name__)

MAX_CALLS_IN_FLIGHT = 1024
EOF_GRACE_S = 1.0
REAP_TIMEOUT_S = 5.0
READ_CHUNK = 1 << 20


HARD_OUTPUT_EXIT_CODE = 71  # worker_cell.HARD_OUTPUT_EXIT_CODE (kept apart: stdlib side)
SIGNAL_EXIT_BASE = 128  # isolation tools report a child killed by signal N as 128 + N


def _describe_exit(returncode: int) -> str:
    if returncode == HARD_OUTPUT_EXIT_CODE:
        return "the cell's output passed the hard output cap, so the sandbox was killed"
    signum = -returncode if returncode < 0 else returncode - SIGNAL_EXIT_BASE
    if returncode < 0 or SIGNAL_EXIT_BASE < returncode < SIGNAL_EXIT_BASE + 65:
        if signum == signal.SIGXCPU:
            return "the sandbox used up its CPU time budget and was killed (SIGXCPU)"
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = str(signum)
        if returncode > 0:
            return f"the REPL worker was killed by signal {name} (exit status {returncode})"
        return f"the REPL worker was killed by signal {name}"
    return f"the REPL worker exited on its own with code {returncode}"


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def find_worker_pid(launcher_pid: int, depth: int = 4) -> int:
    """The host pid of the process at the end of a launcher's single-child chain (the
    worker under bubblewrap's monitor and init, or under unshare's fork)."""
    pid = launcher_pid
    for _ in range(depth):
        children = _children(pid)
        if len(children) != 1:
            break
        pid = children[0]
    return pid


def _retrieve(future: asyncio.Future[Any]) -> None:
    # Results nobody waits for any more (an abandoned command) must not be reported as
    # "exception never retrieved".
    if not future.cancelled():
        future.exception()


class WorkerProcess:
    """One running worker and the host's half of its protocol."""

    def __init__(
        self,
        handler: HostHandler,
        tools: frozenset[str],
        raw: RawOutput,
        *,
        hard_output_chars: int = 0,
    ) -> None:
        self._handler = handler
        self._hard_output = hard_output_chars
        self._raw_seen = 0
        self.worker_pid: int | None = None
        self._worker_group: int | None = None
        """The worker's own host pid when it differs from ``pid`` (a launcher runs it)."""
        self._tools = tools
        self._raw = raw
        self._proc: asyncio.subprocess.Process | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._decoder = wire.FrameDecoder()
        self._transport: asyncio.WriteTransport | None = None
        self._fds: list[int] = []
        self._readers: set[int] = set()
        self._frames_fd = -1
        self._output_fd = -1
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._calls: set[asyncio.Task[None]] = set()
        self._cancel_reason = "the host call was cancelled"
        self._ready: asyncio.Future[None] | None = None
        self._exit_watch: asyncio.Task[None] | None = None
        self._exited = False
        self._violated = False
        self._cell: int | None = None
        """Id of the ``exec`` command running now: only its calls and final are accepted."""
        self.stale_frames = 0
        """Calls and finals refused because they came from an earlier cell's thread."""
        self.death_reason = ""
        self.stop_kind = ""
        """``memory`` or ``inodes`` when the watchdog killed the worker."""
        self.pid: int | None = None

    @property
    def running(self) -> bool:
        """The worker process exists and has not been seen to exit."""
        return self._proc is not None and not self._exited

    # -- start and stop ----------------------------------------------------------------

    async def spawn(
        self, argv: Sequence[str], *, cwd: Path, env: dict[str, str], stdio: bool = False
    ) -> None:
        """Start the worker with two protocol pipes and a pipe for its fd 1/2.

        ``stdio``: the command carries the protocol on its stdin/stdout and the cell
        output on stderr (a container client that passes no other descriptors); the
        command itself moves them onto the worker's dedicated descriptors."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        output_r, output_w = os.pipe()
        try:
            if stdio:
                self._proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=to_worker_r,
                    stdout=from_worker_w,
                    stderr=output_w,
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                )
            else:
                self._proc = await asyncio.create_subprocess_exec(
                    *argv,
                    "--fds",
                    f"{to_worker_r},{from_worker_w}",
                    stdin=subprocess.DEVNULL,
                    stdout=output_w,
                    stderr=subprocess.STDOUT,
                    pass_fds=(to_worker_r, from_worker_w),
                    cwd=cwd,
                    env=env,
                    start_new_session=True,  # its own process group: one signal reaches all
                )
        except OSError as exc:
            for fd in (to_worker_w, from_worker_r, output_r):
                os.close(fd)
            raise SandboxError(f"cannot start the REPL worker {argv[0]!r}: {exc}") from exc
        finally:
            for fd in (to_worker_r, from_worker_w, output_w):
                os.close(fd)
        self.pid = self._proc.pid
        self._fds = [from_worker_r, output_r]
        self._frames_fd, self._output_fd = from_worker_r, output_r
        self._ready = loop.create_future()
        self._ready.add_done_callback(_retrieve)
        for fd, callback in ((from_worker_r, self._on_frames), (output_r, self._on_output)):
            os.set_blocking(fd, False)
            loop.add_reader(fd, callback)
            self._readers.add(fd)
        self._exit_watch = loop.create_task(self._watch_exit(self._proc))
        pipe = os.fdopen(to_worker_w, "wb", buffering=0)
        self._transport, _ = await loop.connect_write_pipe(asyncio.Protocol, pipe)

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait for the worker's ``ready`` frame; ``SandboxError`` with its output if not."""
        assert self._ready is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout_s)
        except TimeoutError:
            await self.kill(f"the REPL worker did not start within {timeout_s:g} s")
        except SandboxDied:
            pass
        if not self._ready.done() or self._ready.exception() is not None:
            output, _ = self.take_raw_output()
            hint = ""
            if "No module named 'rlm_engine" in output:
                # -I ignores PYTHONPATH, so a source checkout must be installed.
                hint = " Install rlm-engine into that interpreter (e.g. `pip install -e .`)."
            raise SandboxError(
                f"the REPL worker failed to start ({self.death_reason}).{hint} "
                f"Its output:\n{output[-4000:]}"
            )

    async def shutdown(self) -> None:
        """Kill the worker's process group, reap it, cancel host calls, close the pipes."""
        await self.kill(self.death_reason or "the sandbox was closed")
        if self._exit_watch is not None and not self._exit_watch.done():
            self._exit_watch.cancel()  # only if reaping timed out (a process stuck in the kernel)
        calls = list(self._calls)
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        self._stop_readers()
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    async def kill(self, reason: str) -> None:
        """Hard-kill the worker's process group and wait until it is reaped."""
        if not self.running:
            return
        self.death_reason = reason
        self._signal(signal.SIGKILL)
        if self._exit_watch is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exit_watch), REAP_TIMEOUT_S)
        self._on_exit(None)

    def kill_now(self) -> None:
        """SIGKILL without waiting or touching the event loop."""
        self._signal(signal.SIGKILL)

    def stop_from_thread(self, kind: str, reason: str) -> None:
        """A typed stop from the watchdog's thread: the reason is set before the kill,
        so the exit watcher reports it instead of the bare signal."""
        if self.running and not self.stop_kind:
            self.stop_kind = kind
            self.death_reason = reason
            self._signal(signal.SIGKILL)

    def violation(self, reason: str) -> None:
        """The worker broke the protocol: it can no longer be trusted, so kill it."""
        if self.running and not self._violated:
            self._violated = True
            self.death_reason = f"the worker broke the protocol ({reason}) and was killed"
            self._signal(signal.SIGKILL)

    def interrupt(self) -> None:
        """Soft interrupt: SIGINT to the process group, as Ctrl-C in a terminal."""
        if self.running:
            self._signal(signal.SIGINT)

    def set_tools(self, tools: frozenset[str]) -> None:
        """Accept calls for ``tools`` from now on."""
        self._tools = tools

    def set_handler(self, handler: HostHandler) -> None:
        """Serve later host calls with ``handler`` (a pooled worker changes owner)."""
        self._handler = handler

    def locate_worker(self) -> None:
        """Find the worker's own pid below the launcher (after ``ready``), so that soft
        interrupts reach the worker and not the isolation tool, which would die of it."""
        if self.pid is None:
            return
        found = find_worker_pid(self.pid)
        if found == self.pid:
            return
        try:
            # bubblewrap's init in the pid namespace leads the worker's group; signals
            # from outside reach that init only if it handles them, so it ignores SIGINT.
            self._worker_group = os.getpgid(found)
        except ProcessLookupError:
            return
        self.worker_pid = found

    def _signal(self, signum: signal.Signals) -> None:
        groups = [self.pid, self._worker_group]
        if signum == signal.SIGINT and self._worker_group is not None:
            groups = [self._worker_group]  # the isolation tool itself would die of SIGINT
        for group in groups:
            if group is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(group, signum)

    async def _watch_exit(self, proc: asyncio.subprocess.Process) -> None:
        self._on_exit(await proc.wait())

    def _on_exit(self, returncode: int | None) -> None:
        if self._exited or self._proc is None:
            return
        if returncode is None:
            returncode = self._proc.returncode
        if not self.death_reason:
            self.death_reason = (
                _describe_exit(returncode) if returncode is not None else "the worker was lost"
            )
        # Remaining group members (processes the cell started) die with the worker.
        self._signal(signal.SIGKILL)
        self._exited = True
        # A reply sent just before the exit still counts.
        while self._read_frames():
            pass
        self.drain_output()
        self._stop_readers()
        error = SandboxDied(self.death_reason)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        self.cancel_calls(self.death_reason)
        if self._transport is not None:
            self._transport.close()

    def _stop_readers(self) -> None:
        if self._loop is not None:
            for fd in self._readers:
                self._loop.remove_reader(fd)
        self._readers.clear()

    # -- reading ---------------------------------------------------------------------

    def _on_frames(self) -> None:
        self._read_frames()

    def _read_frames(self) -> bool:
        """One read from the protocol pipe; False when nothing more is there now."""
        if self._frames_fd not in self._readers:
            return False
        try:
            data = os.read(self._frames_fd, READ_CHUNK)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self._forget_reader(self._frames_fd)
            assert self._loop is not None
            # Usually the worker just died and the exit watcher will say how; if it is
            # still running a moment later, it closed its channel on purpose.
            self._loop.call_later(EOF_GRACE_S, self.violation, "it closed its protocol pipe")
            return False
        try:
            messages = self._decoder.feed(data)
        except wire.WireError as exc:
            self.violation(str(exc))
            return False
        for message in messages:
            try:
                self._dispatch(message)
            except Exception as exc:  # a frame no check foresaw still only ends this worker
                self.violation(f"a frame could not be handled: {type(exc).__name__}")
                return False
        return True

    def _forget_reader(self, fd: int) -> None:
        if fd in self._readers and self._loop is not None:
            self._readers.discard(fd)
            self._loop.remove_reader(fd)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if self._violated:
            return  # nothing more from a worker caught breaking the protocol is acted on
        kind = message.get("type")
        if kind == "call":
            self._start_call(message)
        elif kind == "reply":
            call_id = frame_id(message)
            future = self._pending.pop(call_id, None) if call_id is not None else None
            if future is not None and not future.done():
                if call_id is not None and call_id == self._cell:
                    self._cell = None
                    self._drop_stale_final(message, call_id)
                self.drain_output()  # raw output written before the reply belongs to it
                future.set_result(message)
        elif kind == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        else:
            self.violation(f"unexpected frame type {kind!r}")

    def _drop_stale_final(self, message: dict[str, Any], cell: int) -> None:
        value = as_object(message.get("value"))
        final = as_object(value.get("final")) if value is not None else None
        if value is not None and final is not None and final.get("cell") != cell:
            value["final"] = None
            self._stale("a final answer", final.get("cell"), cell)
        ignored = value.get("stale_finals") if value is not None else None
        if isinstance(ignored, int) and not isinstance(ignored, bool) and 0 < ignored < 2**31:
            # The worker already ignored these; the host counts them with its own.
            self.stale_frames += ignored - 1
            self._stale(f"{ignored} final answer(s)", None, cell)

    def _stale(self, what: str, sender: object, running: int | None) -> None:
        self.stale_frames += 1
        _log.warning(
            "ignored %s from a thread of an earlier cell (cell %r, running %r); %d so far",
            what,
            sender,
            running,
            self.stale_frames,
        )

    def _on_output(self) -> None:
        self._read_output()

    def _read_output(self) -> bool:
        """One read from the stdout pipe; False when nothing more is there now."""
        if self._output_fd not in self._readers:
            return False
        try:
            data = os.read(self._output_fd, READ_CHUNK)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self._raw.finish()
            self._forget_reader(self._output_fd)
            return False
        self._raw.feed(data)
        self._raw_seen += len(data)
        if self._hard_output and self._raw_seen > self._hard_output and self.running:
            self.death_reason = (
                f"the cell wrote more than {self._hard_output:,} bytes to its standard output "
                "(the hard output cap), so the sandbox was killed"
            )
            self._signal(signal.SIGKILL)
        return True

    def drain_output(self) -> None:
        """Read everything already in the stdout pipe without waiting."""
        while self._read_output():
            pass

    def take_raw_output(self) -> tuple[str, int]:
        """Drain the stdout pipe; return and forget its text and the dropped count."""
        self.drain_output()
        self._raw_seen = 0
        return self._raw.take()

    # -- commands and host calls -------------------------------------------------------

    def request(self, kind: str, **fields: Any) -> asyncio.Future[dict[str, Any]]:
        """Send a command; the future gets the worker's reply (or ``SandboxDied``)."""
        assert self._loop is not None
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        future.add_done_callback(_retrieve)
        if not self.running:
            future.set_exception(SandboxDied(self.death_reason or "the worker is not running"))
            return future
        call_id = next(self._ids)
        self._pending[call_id] = future
        if kind == "exec":
            self._cell = call_id
        self._write({"type": kind, "id": call_id, **fields})
        return future

    @staticmethod
    async def wait(
        future: asyncio.Future[dict[str, Any]], timeout_s: float | None
    ) -> dict[str, Any] | None:
        """The reply, ``None`` if ``timeout_s`` passed first; raises ``SandboxDied``.
        The future is never cancelled here, so a later wait can pick it up."""
        if not future.done():
            await asyncio.wait({future}, timeout=timeout_s)
        return future.result() if future.done() else None

    def _write(self, message: dict[str, Any]) -> None:
        frame = wire.encode(message)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame)

    def _start_call(self, message: dict[str, Any]) -> None:
        if not self.running:
            return
        try:
            call = parse_call(message, self._tools)
        except ProtocolViolation as exc:
            self.violation(str(exc))
            return
        except InvalidCall as exc:
            self._reply_error(exc.call_id, str(exc))
            return
        cell = message.get("cell")
        if self._cell is None or cell != self._cell or isinstance(cell, bool):
            self._stale(f"a {call.method} call", cell, self._cell)
            self._reply_error(
                call.id,
                f"{call.method} was refused: it came from a thread started by an earlier cell, "
                "which cannot call for the running one. Start threads in the cell that uses "
                "them and join them before the cell ends (or use the *_batched helpers).",
                "stale",
            )
            return
        if len(self._calls) >= MAX_CALLS_IN_FLIGHT:
            self._reply_error(
                call.id, f"too many host calls in flight (limit {MAX_CALLS_IN_FLIGHT})"
            )
            return
        assert self._loop is not None
        task = self._loop.create_task(self._serve(call))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _serve(self, call: Call) -> None:
        try:
            value = await self._handler(call.method, call.params)
        except asyncio.CancelledError:
            self._reply_error(call.id, f"{call.method} was cancelled: {self._cancel_reason}")
            raise
        except KeyError as exc:
            if call.method == "memory_get":
                self._reply_error(call.id, f"memory has no key {call.params['key']!r}", "missing")
            else:
                self._reply_error(call.id, f"{call.method} failed: KeyError: {exc}")
            return
        except Exception as exc:  # any host failure is reported to the cell, not raised here
            self._reply_error(call.id, f"{call.method} failed: {type(exc).__name__}: {exc}")
            return
        try:
            self._write({"type": "result", "id": call.id, "ok": True, "value": value})
        except (TypeError, ValueError, wire.WireError) as exc:
            self._reply_error(call.id, f"{call.method}: the host's answer cannot be sent: {exc}")

    def _reply_error(self, call_id: int, error: str, kind: str = "error") -> None:
        if self.running:
            self._write(
                {"type": "result", "id": call_id, "ok": False, "error": error, "kind": kind}
            )

    def cancel_calls(self, reason: str) -> None:
        """Cancel every host call in flight; waiting threads in the cell get an error."""
        self._cancel_reason = reason
        for task in list(self._calls):
            task.cancel()
