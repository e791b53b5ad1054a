"""The REPL worker: runs the cells of one sandbox in a persistent namespace (stdlib only).

The host starts it as (``launcher.worker_argv``)::

    python -I -S -c "<set sys.path; run main()>" --fds IN,OUT [--output-cap N] [--tools a,b]

``python -I -m rlm_engine.sandbox.worker ...`` works the same.

``IN`` and ``OUT`` are the dedicated protocol pipes (see ``wire``); fd 1 and 2 are a plain
pipe the host drains, so printing can never forge a frame. Cells run in the main thread so
SIGINT can interrupt them; a reader thread routes call results to waiting callers while a
cell runs, and exits the worker when the host goes away.
"""

from __future__ import annotations

import builtins
import faulthandler
import io
import os
import queue
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, cast

from rlm_engine.sandbox import wire
from rlm_engine.sandbox.worker_cell import (
    CappedOutput,
    SoftInterrupt,
    capture,
    restore,
    run_cell,
)
from rlm_engine.sandbox.worker_channel import HostChannel, exit_with_host
from rlm_engine.sandbox.worker_context import load_context
from rlm_engine.sandbox.worker_limits import apply_rlimits
from rlm_engine.sandbox.worker_names import RESERVED_NAMES, Pristine, ReplNames, VarsReport

if TYPE_CHECKING:
    from rlm_engine.sandbox.worker_snapshot import Snapshots

DEFAULT_OUTPUT_CAP = 1_000_000

# Bound before a journaled cell replaces time.perf_counter: the worker's own timing stays
# real and out of the cell's recorded reads.
_perf_counter = time.perf_counter


class Worker:
    """Serves the host's commands (exec, load_context, list_vars) one at a time."""

    def __init__(
        self,
        in_fd: int,
        out_fd: int,
        *,
        output_cap: int,
        tools: list[str],
        hard_cap: int = 0,
        workspace: str | None = None,
    ) -> None:
        self._in_fd = in_fd
        self._channel = HostChannel(out_fd)
        self._commands: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self._names = ReplNames(
            self._channel, self._namespace, tools, workspace=workspace, owner=self._channel.owner
        )
        self._pristine: Pristine | None = None
        self._helpers = self._names.helpers()
        self._interrupt = SoftInterrupt()
        self._output = CappedOutput(output_cap, hard_cap)
        self._cells = 0
        self._snapshots: Snapshots | None = None

    def serve(self) -> None:
        """Announce readiness, then run commands until the host goes away."""
        self._interrupt.install()
        self._names.install()
        self._channel.start()
        self._pristine = _pristine(self._channel)
        reader = threading.Thread(target=self._read_loop, name="rlm-wire-reader", daemon=True)
        reader.start()
        self._channel.send({"type": "ready", "pid": os.getpid()})
        while True:
            message = self._commands.get()
            self._channel.send(self._handle(message))

    def _read_loop(self) -> None:
        while True:
            try:
                message = wire.read_frame(self._in_fd)
            except (OSError, wire.WireError):
                message = None
            if message is None:
                exit_with_host()
                return
            if message.get("type") == "result":
                self._channel.deliver(message)
            else:
                self._commands.put(message)

    def _handle(self, message: dict[str, Any]) -> dict[str, Any]:
        request_id = message.get("id")
        kind = message.get("type")
        try:
            if kind == "exec":
                value: Any = self._exec_at(message)
            elif kind == "load_context":
                value = self._load_context(message.get("spec"))
            elif kind in ("snapshot", "restore"):
                value = self._snapshot_command(kind, message)
            elif kind == "list_vars":
                value = dict(self._names.user_vars())
            elif kind == "set_tools":
                tools = cast(object, message.get("tools"))
                names = (
                    [str(t) for t in cast(list[object], tools)] if isinstance(tools, list) else []
                )
                if not isinstance(tools, list) or names != tools:
                    raise TypeError("set_tools needs a list of names")
                self._names.set_tools(names)
                self._helpers = self._names.helpers()
                self._names.install()
                value = None
            else:
                raise ValueError(f"unknown command {kind!r}")
        except Exception as exc:  # a failed command is a reply, never a dead worker
            return {"type": "reply", "id": request_id, "ok": False, "error": str(exc)}
        return {"type": "reply", "id": request_id, "ok": True, "value": value}

    def _exec_at(self, message: dict[str, Any]) -> dict[str, Any]:
        """An ``exec`` command: with a ``clock`` (journaled runs) the cell runs on the
        replay-stable clock and entropy, and its reply carries its precise-clock reads."""
        code = str(message.get("code", ""))
        cell_id = message.get("id")
        cell = cell_id if isinstance(cell_id, int) else 0
        clock = message.get("clock")
        if not isinstance(clock, int | float) or isinstance(clock, bool):
            return self._exec(code, cell)
        from rlm_engine.sandbox import worker_clock

        entropy = message.get("entropy")
        reads = cast(object, message.get("reads"))
        replay = (
            [int(r) for r in cast(list[object], reads) if isinstance(r, int)]
            if isinstance(reads, list)
            else None
        )
        worker_clock.start(float(clock), entropy if isinstance(entropy, str) else None, replay)
        try:
            value = self._exec(code, cell)
        finally:
            recorded = worker_clock.finish()
        value["clock_reads"] = recorded
        return value

    def _exec(self, code: str, cell: int) -> dict[str, Any]:
        self._cells += 1
        self._repair()
        self._names.final = None
        self._names.install()
        self._channel.owner.begin(cell)
        # Reinstalled around every cell: a cell may have replaced the SIGINT handler.
        self._interrupt.install()
        stdout, stderr = sys.stdout, sys.stderr
        capture(self._output)
        started = _perf_counter()
        try:
            error = run_cell(
                code, self._namespace, f"<cell-{self._cells}>", self._interrupt, self._show
            )
        finally:
            stale_finals = self._channel.owner.stale_finals
            # Before the reply is built: the worker's own code must run untampered.
            self._repair()
            self._channel.owner.end()
            restore(stdout, stderr)
            self._interrupt.install()
            self._names.install()
        output, dropped = self._output.take()
        return {
            "status": "ok" if error is None else "error",
            "output": output,
            "error": error,
            "final": self._names.final,
            "dropped": dropped,
            "interrupted": self._interrupt.fired,
            "duration": _perf_counter() - started,
            "stale_finals": stale_finals,
        }

    def _repair(self) -> None:
        """Undo a previous cell's tampering with the helpers, builtins and channel."""
        if self._pristine is not None:
            self._pristine.restore()
        self._namespace["__builtins__"] = builtins
        self._names.rewire(self._channel, self._namespace, self._channel.owner, self._helpers)

    def _snapshot_command(self, kind: str, message: dict[str, Any]) -> dict[str, Any]:
        """Snapshot the namespace, or restore one (``worker_snapshot``; imported on first
        use: runs without a journal never pay for pickle)."""
        if self._snapshots is None:
            from rlm_engine.sandbox.worker_snapshot import Snapshots

            self._snapshots = Snapshots(
                self._namespace, lambda: RESERVED_NAMES | self._names.tool_names
            )
        # Pickling and unpickling may run code the cells defined (``__reduce__``, an
        # import): the host's soft interrupt reaches it, as it reaches a cell.
        self._interrupt.arm()
        try:
            if kind == "restore":
                return self._snapshots.restore(str(message.get("data", "")))
            cap = message.get("max_bytes")
            return self._snapshots.take(cap if isinstance(cap, int) and cap > 0 else 0)
        except KeyboardInterrupt:
            raise RuntimeError(f"the {kind} was interrupted: it ran past its deadline") from None
        finally:
            self._interrupt.disarm()
            self._interrupt.install()

    def _load_context(self, spec: object) -> dict[str, Any]:
        if not isinstance(spec, dict):
            raise TypeError("load_context needs a spec object")
        loaded = cast(dict[str, Any], spec)
        value, meta = load_context(loaded)
        self._names.context = value
        # A table context brings sql(); kept among the helpers each cell gets back.
        self._names.set_sql(getattr(value, "sql", None) if loaded.get("kind") == "table" else None)
        self._helpers = self._names.helpers()
        self._names.install()
        return meta

    @staticmethod
    def _show(value: Any) -> None:
        """Echo a cell's trailing expression like a notebook does."""
        if value is not None and not isinstance(value, VarsReport):
            print(repr(value))


def _pristine(channel: HostChannel) -> Pristine:
    """The worker's own modules as they are before any cell ran."""
    import json
    import json.decoder
    import json.encoder

    from rlm_engine.sandbox import (
        corpus,
        large_text,
        worker_cell,
        worker_channel,
        worker_names,
        worker_workspace,
    )

    modules = [
        sys.modules[__name__],
        wire,
        worker_cell,
        worker_channel,
        worker_names,
        worker_workspace,
        corpus,
        large_text,
        json,
        json.decoder,
        json.encoder,
    ]
    return Pristine(modules, [channel, channel.owner])


def _parse_args(argv: list[str]) -> dict[str, str]:
    options = dict(zip(argv[::2], argv[1::2], strict=False))
    if "--fds" not in options:
        raise SystemExit("usage: python -I -m rlm_engine.sandbox.worker --fds IN,OUT")
    return options


def _confine(options: dict[str, str]) -> None:
    """Limits first, before any thread exists and before any command is read: rlimits
    and Landlock bind this process and everything it will start."""
    if "--rlimits" in options:
        apply_rlimits(options["--rlimits"])
    if options.get("--landlock"):
        # Only the unshare level asks for Landlock; ctypes is not worth importing otherwise.
        from rlm_engine.sandbox import landlock

        landlock.restrict([path for path in options["--landlock"].split(",") if path])


def _site_builtins() -> None:
    """What ``site`` adds to builtins, for a worker started with ``-S``: cells may call
    ``exit()`` or ``help()`` as in any Python."""
    if not sys.flags.no_site:
        return
    import _sitebuiltins

    eof = "Ctrl-D (i.e. EOF)"
    builtins.quit = _sitebuiltins.Quitter("quit", eof)
    builtins.exit = _sitebuiltins.Quitter("exit", eof)
    builtins.help = _sitebuiltins._Helper()  # pyright: ignore[reportPrivateUsage]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    options = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        in_fd, out_fd = (int(part) for part in options["--fds"].split(","))
    except ValueError:
        raise SystemExit("--fds needs two descriptors: IN,OUT") from None
    cap = int(options.get("--output-cap", DEFAULT_OUTPUT_CAP))
    hard_cap = int(options.get("--hard-output-cap", "0"))
    tools = [name for name in options.get("--tools", "").split(",") if name]
    _confine(options)
    _site_builtins()
    os.umask(0o077)
    # Processes the cells spawn must not inherit the protocol pipes.
    os.set_inheritable(in_fd, False)
    os.set_inheritable(out_fd, False)
    faulthandler.enable()  # a crash leaves a traceback in the raw output the host keeps
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True, errors="backslashreplace")
    Worker(
        in_fd,
        out_fd,
        output_cap=cap,
        hard_cap=hard_cap,
        tools=tools,
        workspace=options.get("--workspace") or None,
    ).serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
