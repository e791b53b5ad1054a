"""``LocalSandbox``: the REPL in a separate local worker process.

Always: a process of its own (own session and process group), a private working
directory, a minimal environment without credentials, a framed protocol on dedicated
pipes, rlimits, wall-clock deadlines with soft then hard stops, a hard output cap.
With ``isolation="auto"`` (the default) or ``"strict"`` on Linux the worker also runs
under OS isolation (see ``isolation`` and ``launcher``): no network, a read-only system,
no host files but its contexts and workspace, a dedicated unprivileged uid under root.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import keyword
import shutil
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rlm_engine.errors import ContextError, SandboxDied, SandboxError
from rlm_engine.sandbox.base import (
    CellClock,
    CellResult,
    CellStatus,
    ContextMeta,
    ContextValue,
    HostHandler,
    NamespaceSnapshot,
    SandboxFactory,
)
from rlm_engine.sandbox.context import stage_context
from rlm_engine.sandbox.context_meta import LAZY_CONTEXT_BYTES, describe_context
from rlm_engine.sandbox.host_process import WorkerProcess
from rlm_engine.sandbox.host_protocol import (
    ProtocolViolation,
    parse_cell_reply,
    parse_context_meta,
    parse_snapshot,
    parse_vars,
)
from rlm_engine.sandbox.isolation import ISOLATION_MODES, IsolationLevel, IsolationMode
from rlm_engine.sandbox.limits import Limits, process_limit_note
from rlm_engine.sandbox.local_launch import PreparedWorker, WorkerOptions, prepare_worker
from rlm_engine.sandbox.raw_output import RawOutput
from rlm_engine.sandbox.watchdog import Watchdog, memory_message, start_watchdog
from rlm_engine.sandbox.worker_names import RESERVED_NAMES

START_TIMEOUT_S = 30.0
SNAPSHOT_TIMEOUT_S = 30.0
"""How long pickling or loading a namespace snapshot may take in the worker."""
_T = TypeVar("_T")


def _check_tools(tools: Sequence[str]) -> tuple[str, ...]:
    names = tuple(tools)
    for name in names:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"tool name {name!r} is not a valid Python identifier")
        if name in RESERVED_NAMES:
            raise ValueError(f"tool name {name!r} clashes with a built-in REPL name")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate tool names in {names!r}")
    return names


class LocalSandbox:
    """A persistent Python REPL in a local worker process (implements ``Sandbox``).

    ``handler`` serves the REPL's host calls (``llm_query`` and friends, memory, tools);
    each call runs as its own task so batches and concurrent calls proceed in parallel.
    ``tools`` become callables in the REPL. ``output_cap_chars`` bounds a cell's output;
    ``kill_grace_s`` is how long a timed-out cell may take to stop after the soft
    interrupt before the process is killed. ``python`` selects the interpreter (which must
    be able to import ``rlm_engine``); the default is the host's own.

    ``isolation``: ``"auto"`` (best available, a loud warning without any),
    ``"strict"`` (``IsolationUnavailable`` at ``start()`` without OS isolation) or
    ``"none"``. ``limits`` bounds memory, CPU, processes, files and output.
    ``workspace`` is a host directory kept between runs, writable by the REPL (at
    ``/data`` under bubblewrap) and offered as ``workspace``. Text files of at least
    ``lazy_context_bytes`` are memory-mapped as ``LargeText`` instead of read.
    """

    def __init__(
        self,
        handler: HostHandler,
        *,
        tools: Sequence[str] = (),
        workdir_parent: Path | None = None,
        output_cap_chars: int = 1_000_000,
        kill_grace_s: float = 0.5,
        python: str | None = None,
        isolation: IsolationMode = "auto",
        limits: Limits | None = None,
        workspace: Path | None = None,
        lazy_context_bytes: int = LAZY_CONTEXT_BYTES,
        bwrap_path: str | None = None,
    ) -> None:
        if output_cap_chars < 0 or kill_grace_s < 0:
            raise ValueError("output_cap_chars and kill_grace_s must not be negative")
        if isolation not in ISOLATION_MODES:
            raise ValueError(f"isolation must be one of {ISOLATION_MODES}, not {isolation!r}")
        self._handler = handler
        self._tools = _check_tools(tools)
        self._workdir_parent = workdir_parent
        self._cap = output_cap_chars
        self._grace = kill_grace_s
        self._lazy_bytes = lazy_context_bytes
        self._options = WorkerOptions(
            python=python or sys.executable,
            tools=self._tools,
            output_cap=output_cap_chars,
            isolation=isolation,
            limits=limits or Limits(),
            workspace=workspace,
            bwrap_path=bwrap_path,
        )
        self._prepared: PreparedWorker | None = None
        self._workdir: Path | None = None
        self._link: WorkerProcess | None = None
        self._watchdog: Watchdog | None = None
        self._closed = False
        self._lock = asyncio.Lock()
        self._contexts = 0
        self._background: set[asyncio.Task[None]] = set()
        self.startup_s: float | None = None
        """Seconds from ``start()`` to the worker's first frame."""

    # -- lifecycle -------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """True once started and until the worker dies or the sandbox is closed."""
        return not self._closed and self._link is not None and self._link.running

    @property
    def pid(self) -> int | None:
        """The worker's host process id (also its process group id), once started.
        Under an isolation tool this is the worker itself, not the tool."""
        if self._link is None:
            return None
        return self._link.worker_pid or self._link.pid

    @property
    def workdir(self) -> Path | None:
        """The worker's private working directory, once started."""
        return self._workdir

    @property
    def isolation_level(self) -> IsolationLevel | None:
        """``bubblewrap``, ``unshare`` or ``none`` once started."""
        return None if self._prepared is None else self._prepared.level

    @property
    def worker_uid(self) -> int | None:
        """The dedicated uid the worker runs as, when the host is root and isolates."""
        return None if self._prepared is None else self._prepared.launch.uid

    async def set_tools(self, tools: Sequence[str]) -> None:
        """Offer ``tools`` in the REPL instead of the ones given at construction."""
        names = _check_tools(tools)
        await self._command("set_tools", tools=list(names))
        self._tools = names
        if self._link is not None:
            self._link.set_tools(frozenset(names))

    def kill_now(self) -> None:
        """Synchronous last resort (no event loop needed): kill the worker and free its
        resources. Used for pooled sandboxes whose event loop has gone away."""
        self._closed = True
        if self._link is not None:
            self._link.kill_now()
        if self._watchdog is not None:
            self._watchdog.close()
        if self._prepared is not None:
            self._prepared.release()

    def set_handler(self, handler: HostHandler) -> None:
        """Serve the REPL's host calls with ``handler`` from now on (a warm pool hands
        pre-started sandboxes to their user this way)."""
        self._handler = handler
        if self._link is not None:
            self._link.set_handler(handler)

    async def start(self) -> None:
        """Start the worker and wait until it is ready. Calling it again is a no-op."""
        if self._closed:
            raise SandboxDied("the sandbox is closed; create a new one")
        if self._link is not None:
            return
        loop = asyncio.get_running_loop()
        began = loop.time()
        prepared = await asyncio.to_thread(self._prepare)
        self._prepared = prepared
        self._workdir = prepared.workdir
        launch = prepared.launch
        link = WorkerProcess(
            self._handler,
            frozenset(self._tools),
            RawOutput(self._cap),
            hard_output_chars=self._options.limits.hard_output_chars,
        )
        self._link = link
        try:
            await link.spawn(launch.argv, cwd=launch.cwd, env=launch.env, stdio=launch.stdio)
            await link.wait_ready(START_TIMEOUT_S)
            link.locate_worker()
            self._watchdog = start_watchdog(prepared, link, self._options.limits)
        except BaseException:
            await self.close()
            raise
        self.startup_s = loop.time() - began

    def _prepare(self) -> PreparedWorker:
        """Plan the worker (blocking; runs in a thread). Other backends override this."""
        return prepare_worker(self._options, self._workdir_parent)

    async def close(self) -> None:
        """Kill the worker and everything it started, remove its directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._background):
            task.cancel()
        if self._link is not None:
            await self._link.shutdown()
        if self._watchdog is not None:
            self._watchdog.close()
        if self._prepared is not None:
            await asyncio.to_thread(self._prepared.release)

    async def __aenter__(self) -> LocalSandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _require_link(self) -> WorkerProcess:
        if self._closed:
            raise SandboxDied("the sandbox is closed; create a new one")
        link = self._link
        if link is None:
            raise SandboxError("the sandbox is not started; call start() first")
        if not link.running:
            raise SandboxDied(f"the sandbox is dead ({link.death_reason}); its variables are lost")
        return link

    # -- commands --------------------------------------------------------------------

    async def execute(self, code: str, *, timeout_s: float) -> CellResult:
        """Run one cell. At ``timeout_s`` the cell gets a KeyboardInterrupt (status
        ``timeout``, variables kept); if it has not stopped ``kill_grace_s`` later the
        process group is killed (status ``killed``, the sandbox is dead)."""
        return await self._execute(code, timeout_s, None)

    async def execute_at(
        self, code: str, *, clock: float | CellClock, timeout_s: float
    ) -> CellResult:
        """``execute`` with the REPL's replay-stable clock started at ``clock`` (seconds
        since the epoch, or a journaled cell's whole ``CellClock``) just before the cell,
        in the same command."""
        return await self._execute(code, timeout_s, clock)

    async def _execute(
        self, code: str, timeout_s: float, clock: float | CellClock | None
    ) -> CellResult:
        link = self._require_link()
        await self._lock.acquire()
        handed_off = False
        began = asyncio.get_running_loop().time()
        try:
            link = self._require_link()
            fields: dict[str, Any] = {"code": code}
            if isinstance(clock, CellClock):
                fields.update(clock=clock.start, entropy=clock.entropy, reads=clock.reads)
            elif clock is not None:
                fields["clock"] = clock
            reply_future = link.request("exec", **fields)
            try:
                return await self._run(link, reply_future, timeout_s, began)
            except asyncio.CancelledError:
                # The caller gave up: stop the cell in the background, and keep the lock
                # until it has stopped so the next cell cannot be hit by the interrupt.
                handed_off = True
                self._spawn(self._abandon(link, reply_future))
                raise
        finally:
            if not handed_off:
                self._lock.release()

    async def _run(
        self,
        link: WorkerProcess,
        reply_future: asyncio.Future[dict[str, Any]],
        timeout_s: float,
        began: float,
    ) -> CellResult:
        try:
            reply = await link.wait(reply_future, timeout_s)
            timed_out = reply is None
            if reply is None:
                link.interrupt()
                reply = await link.wait(reply_future, self._grace)
            if reply is None:
                await link.kill(
                    f"the cell ran past its {timeout_s:g} s limit and did not stop within "
                    f"{self._grace:g} s of the interrupt, so the sandbox was killed"
                )
                return self._dead_result(link, began)
        except SandboxDied:
            return self._dead_result(link, began)
        return self._cell_result(link, reply, began, timeout_s if timed_out else None)

    def _cell_result(
        self, link: WorkerProcess, reply: dict[str, Any], began: float, timeout_s: float | None
    ) -> CellResult:
        elapsed = asyncio.get_running_loop().time() - began
        if reply.get("ok") is not True:
            # The worker could not even run the cell (an internal failure, not the code's).
            output, dropped = self._cap_output(*link.take_raw_output())
            error = f"SandboxError: the worker failed to run the cell: {reply.get('error')}"
            return CellResult("error", output, error, duration_s=elapsed, dropped_chars=dropped)
        try:
            cell = parse_cell_reply(reply.get("value"))
        except ProtocolViolation as exc:
            link.violation(str(exc))
            return self._dead_result(link, began)
        raw, raw_dropped = link.take_raw_output()
        output, dropped = self._cap_output(cell.output + raw, cell.dropped + raw_dropped)
        status: CellStatus = "ok" if cell.ok else "error"
        error = cell.error
        if error:
            error += process_limit_note(error, self._options.limits)
        if timeout_s is not None and cell.interrupted:
            status = "timeout"
            link.cancel_calls("the cell was interrupted")
            error = (
                f"TimeoutError: the cell ran past its {timeout_s:g} s limit and was interrupted; "
                "variables assigned before the interrupt are kept.\n" + (cell.error or "")
            )
        return CellResult(status, output, error, cell.final, elapsed, dropped, cell.clock_reads)

    def _dead_result(self, link: WorkerProcess, began: float) -> CellResult:
        raw, raw_dropped = link.take_raw_output()
        output, dropped = self._cap_output(raw, raw_dropped)
        cgroup = None if self._prepared is None else self._prepared.cgroup
        if not link.stop_kind and cgroup is not None and cgroup.oom_killed():
            link.stop_kind = "memory"
            link.death_reason = memory_message(self._options.limits.memory_mb, 0)
        error = f"SandboxKilled: {link.death_reason}."
        if link.stop_kind:  # a typed stop: its message leads, with what to do
            error = link.death_reason
        return CellResult(
            status="killed",
            output=output,
            error=f"{error} The REPL process is gone and all its variables are lost; a new "
            "sandbox must be started.",
            duration_s=asyncio.get_running_loop().time() - began,
            dropped_chars=dropped,
        )

    def _cap_output(self, output: str, dropped: int) -> tuple[str, int]:
        if len(output) <= self._cap:
            return output, dropped
        return output[: self._cap], dropped + len(output) - self._cap

    async def _abandon(self, link: WorkerProcess, reply_future: asyncio.Future[Any]) -> None:
        try:
            link.interrupt()
            with contextlib.suppress(SandboxDied):
                if await link.wait(reply_future, self._grace) is None:
                    await link.kill("a cancelled cell did not stop after the interrupt")
        finally:
            self._lock.release()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _command(self, kind: str, **fields: Any) -> Any:
        """Send a command other than exec and return its value (no deadline)."""
        async with self._lock:
            link = self._require_link()
            reply = await link.wait(link.request(kind, **fields), None)
        assert reply is not None  # without a deadline only a reply or SandboxDied ends the wait
        if reply.get("ok") is not True:
            raise _CommandFailed(str(reply.get("error")))
        return reply.get("value")

    def _checked(self, parse: Callable[[object], _T], value: object) -> _T:
        try:
            return parse(value)
        except ProtocolViolation as exc:
            if self._link is not None:
                self._link.violation(str(exc))
            raise SandboxDied(f"the worker sent a malformed reply ({exc}) and was killed") from None

    async def load_context(self, value: ContextValue) -> ContextMeta:
        """Make ``value`` the REPL's ``context``; only file paths cross the pipe.

        ``str`` -> str; a text file -> str; a ``.json`` file or a mapping -> its JSON
        value; a list of str or files -> list[str]; a directory -> ``Corpus``;
        ``None`` -> None. Raises ``ContextError`` naming a missing path.
        """
        self._require_link()
        assert self._workdir is not None
        self._contexts += 1
        target = self._workdir / "contexts" / str(self._contexts)
        policy = None if self._prepared is None else self._prepared.staging
        spec = await asyncio.to_thread(
            stage_context, value, target, policy=policy, lazy_over_bytes=self._lazy_bytes
        )
        try:
            meta = await self._command("load_context", spec=spec)
        except _CommandFailed as exc:
            raise ContextError(f"the context could not be loaded: {exc}") from None
        finally:
            if spec.get("kind") != "corpus" and not spec.get("lazy"):
                # The worker holds the value in memory now. Removing the staged files
                # means code in the cell cannot write through a hard link to the
                # user's original, and a copied body does not occupy the disk twice.
                await asyncio.to_thread(shutil.rmtree, target, True)
        return self._checked(parse_context_meta, meta)

    def describe_context(self, value: ContextValue) -> ContextMeta | None:
        """What ``load_context(value)`` will return, computed on the host by the worker's
        own loader from identically staged files (blocking; no worker needed), so the
        root's first prompt can go out while the worker starts."""
        return describe_context(value, lazy_over_bytes=self._lazy_bytes, under=self._workdir_parent)

    async def list_vars(self) -> dict[str, str]:
        """User variables in the REPL and short type descriptions."""
        return self._checked(parse_vars, await self._command("list_vars"))

    async def snapshot(
        self, *, max_bytes: int, timeout_s: float = SNAPSHOT_TIMEOUT_S
    ) -> NamespaceSnapshot:
        """Pickle the user's variables inside the worker (``worker_snapshot``); the bytes
        come back opaque and are never unpickled here. A worker that cannot take one (an
        older installation behind a relay), or does not within ``timeout_s``, gives a
        snapshot with only a ``reason``."""
        try:
            value = await self._bounded("snapshot", timeout_s, max_bytes=max_bytes)
        except _CommandFailed as exc:
            return NamespaceSnapshot(None, reason=f"the worker took no snapshot: {exc}")
        return self._checked(lambda v: parse_snapshot(v, max_bytes), value)

    async def restore(self, data: bytes, *, timeout_s: float = SNAPSHOT_TIMEOUT_S) -> None:
        """Load a snapshot into this REPL; ``SandboxError`` if the worker cannot read it."""
        encoded = base64.b64encode(data).decode("ascii")
        try:
            await self._bounded("restore", timeout_s, data=encoded)
        except _CommandFailed as exc:
            raise SandboxError(f"the REPL could not load the snapshot: {exc}") from None

    async def _bounded(self, kind: str, timeout_s: float, **fields: Any) -> Any:
        """A command that may run the cells' code (pickling does): past ``timeout_s`` it
        gets the soft interrupt, and the worker is killed if that does not stop it."""
        async with self._lock:
            link = self._require_link()
            future = link.request(kind, **fields)
            reply = await link.wait(future, timeout_s)
            if reply is None:
                link.interrupt()
                reply = await link.wait(future, self._grace)
            if reply is None:
                await link.kill(f"the {kind} did not stop when interrupted, so it was killed")
                raise SandboxDied(link.death_reason)
        if reply.get("ok") is not True:
            raise _CommandFailed(str(reply.get("error")))
        return reply.get("value")


class _CommandFailed(Exception):
    """The worker answered a command with an error."""


def local_sandbox_factory(
    handler: HostHandler, *, reserved_tools: Sequence[str] = ()
) -> LocalSandbox:
    """A ``SandboxFactory`` building ``LocalSandbox`` with default settings."""
    return LocalSandbox(handler, tools=reserved_tools)


if TYPE_CHECKING:
    # Static proof that LocalSandbox satisfies the Sandbox protocol through the factory.
    _factory_check: SandboxFactory = local_sandbox_factory
