"""The worker's side of a relay: start the worker on this machine and move its bytes.

Used inside a Ray actor. The worker is launched exactly as the local backend launches it
(same isolation choice, uid slot, limits and private directory, decided on this node),
with its protocol on dedicated pipes. One thread reads both pipes; raw output is always
published before the frames that follow it, so a cell's output never trails its reply.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm_engine.sandbox import wire
from rlm_engine.sandbox.context import ContextSpec, stage_context
from rlm_engine.sandbox.host_process import find_worker_pid
from rlm_engine.sandbox.isolation import IsolationMode
from rlm_engine.sandbox.limits import Limits
from rlm_engine.sandbox.local_launch import PreparedWorker, WorkerOptions, prepare_worker

READ_CHUNK = 1 << 20
PUMP_TICK_S = 0.25
MAX_PENDING_OUTPUT = 256 * 1024 * 1024
# What a relay process keeps of its environment: enough for itself and its runtime
# (RAY_* settings, device assignments), nothing a cluster inherited from whoever
# started it (API keys, tokens).
KEPT_ENV = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME", "TZ"})
KEPT_ENV_PREFIXES = ("RAY_",)
KEPT_ENV_SUFFIXES = ("_VISIBLE_DEVICES",)


def scrub_environment(environ: MutableMapping[str, str]) -> list[str]:
    """Drop every variable but ``KEPT_ENV`` and runtime settings; return the dropped names."""
    dropped = [
        name
        for name in environ
        if name not in KEPT_ENV
        and not name.startswith(KEPT_ENV_PREFIXES)
        and not name.endswith(KEPT_ENV_SUFFIXES)
    ]
    for name in dropped:
        del environ[name]
    return dropped


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """What the host asks of a remote worker (picklable; paths are the node's)."""

    tools: tuple[str, ...] = ()
    output_cap: int = 1_000_000
    isolation: IsolationMode = "auto"
    limits: Limits = Limits()
    workspace: str | None = None
    bwrap_path: str | None = None
    workdir_parent: str | None = None
    lazy_context_bytes: int = 64 * 1024 * 1024
    python: str | None = None


class NodeWorker:
    """One worker on this machine and the buffers between it and the host."""

    def __init__(self, settings: NodeSettings) -> None:
        self._settings = settings
        self._prepared: PreparedWorker | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._to_worker = -1
        self._fds: list[int] = []
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()  # no write to a descriptor close() is closing
        self._output = bytearray()
        self._frames = bytearray()
        self._exit: int | None = None
        self._pump_thread: threading.Thread | None = None
        self._worker_group: int | None = None
        self._closed = False

    def start(self) -> dict[str, Any]:
        """Launch the worker; return where and how it runs."""
        settings = self._settings
        options = WorkerOptions(
            python=settings.python or sys.executable,
            tools=settings.tools,
            output_cap=settings.output_cap,
            isolation=settings.isolation,
            limits=settings.limits,
            workspace=None if settings.workspace is None else Path(settings.workspace),
            bwrap_path=settings.bwrap_path,
        )
        parent = None if settings.workdir_parent is None else Path(settings.workdir_parent)
        prepared = prepare_worker(options, parent)
        self._prepared = prepared
        launch = prepared.launch
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        out_r, out_w = os.pipe()
        # A child inherits the calling thread's signal mask, and runtime threads (Ray's
        # among them) block SIGINT: unblocked, or the soft interrupt never arrives.
        mask = signal.pthread_sigmask(signal.SIG_SETMASK, set())
        try:
            self._proc = subprocess.Popen(
                [*launch.argv, "--fds", f"{to_r},{from_w}"],
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=subprocess.STDOUT,
                pass_fds=(to_r, from_w),
                cwd=launch.cwd,
                env=launch.env,  # the minimal environment, never this process's
                start_new_session=True,
            )
        except OSError:
            for fd in (to_w, from_r, out_r):
                os.close(fd)
            prepared.release()
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            for fd in (to_r, from_w, out_w):
                os.close(fd)
        self._to_worker = to_w
        self._fds = [from_r, out_r]
        for fd in self._fds:
            os.set_blocking(fd, False)
        self._pump_thread = threading.Thread(
            target=self._pump, args=(from_r, out_r), name="rlm-relay-pump", daemon=True
        )
        self._pump_thread.start()
        return {
            "isolation": prepared.level,
            "uid": launch.uid,
            "hostname": socket.gethostname(),
            "pid": self._proc.pid,
        }

    # -- reading -----------------------------------------------------------------------

    @staticmethod
    def _read_all(fd: int, live: set[int]) -> bytes:
        chunks: list[bytes] = []
        while fd in live:
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                live.discard(fd)
                break
            chunks.append(data)
        return b"".join(chunks)

    def _publish(self, output: bytes, frames: bytes) -> None:
        if not output and not frames:
            return
        with self._cond:
            room = MAX_PENDING_OUTPUT - len(self._output)
            if len(output) > room:
                # The host kills a cell far below this; here it only bounds memory.
                self._signal_groups(signal.SIGKILL)
                output = output[: max(room, 0)]
            self._output += output
            self._frames += frames
            self._cond.notify_all()

    def _pump(self, frames_fd: int, output_fd: int) -> None:
        proc = self._proc
        assert proc is not None
        live = {frames_fd, output_fd}
        while proc.poll() is None:
            if live:
                select.select(list(live), [], [], PUMP_TICK_S)
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(PUMP_TICK_S)
            # Frames first, output second: output the worker wrote before a frame is in
            # its pipe by then, and is published ahead of that frame.
            frames = self._read_all(frames_fd, live)
            if frames and self._worker_group is None:
                self._locate_worker(proc.pid)  # the first frame is "ready": it runs now
            self._publish(self._read_all(output_fd, live), frames)
        # What the worker started dies with it, as it does under the local backend.
        self._signal_groups(signal.SIGKILL, exited=True)
        frames = self._read_all(frames_fd, live)
        self._publish(self._read_all(output_fd, live), frames)
        with self._cond:
            self._exit = proc.returncode
            self._cond.notify_all()

    def poll(self, wait_s: float) -> tuple[bytes, bytes, int | None]:
        """Wait up to ``wait_s`` for news; return (output, frames, exit status or None).
        The exit status comes with the last bytes the worker wrote."""
        with self._cond:
            self._cond.wait_for(
                lambda: bool(self._output or self._frames) or self._exit is not None, wait_s
            )
            output, frames = bytes(self._output), bytes(self._frames)
            self._output.clear()
            self._frames.clear()
            return output, frames, self._exit

    # -- commands from the host ----------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Write protocol bytes to the worker (in the order the host sent them)."""
        with self._send_lock, contextlib.suppress(OSError):  # poll() reports a dead worker
            if self._to_worker >= 0:
                wire.write_all(self._to_worker, data)

    def _locate_worker(self, launcher_pid: int) -> None:
        """Find the worker's own process group below an isolation tool, once, before any
        cell runs (a cell's own children must not be mistaken for it)."""
        found = find_worker_pid(launcher_pid)
        with contextlib.suppress(ProcessLookupError):
            self._worker_group = os.getpgid(found) if found != launcher_pid else launcher_pid

    def _groups(self, signum: signal.Signals) -> list[int]:
        proc = self._proc
        if proc is None:
            return []
        worker_group = self._worker_group
        if signum == signal.SIGINT and worker_group is not None:
            return [worker_group]  # the isolation tool itself would die of SIGINT
        return [group for group in (proc.pid, worker_group) if group is not None]

    def _signal_groups(self, signum: signal.Signals, *, exited: bool = False) -> None:
        proc = self._proc
        if proc is None or (proc.returncode is not None and not exited):
            return
        groups = [proc.pid] if exited else self._groups(signum)
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signum)

    def interrupt(self) -> None:
        """Soft interrupt: SIGINT to the worker's process group."""
        self._signal_groups(signal.SIGINT)

    def kill(self) -> None:
        """Hard kill: SIGKILL to the worker and everything it started."""
        self._signal_groups(signal.SIGKILL)

    def stage(self, value: Any, index: int) -> tuple[ContextSpec, bool]:
        """Stage a context on this node; return its spec and whether it may be removed
        after loading. Paths are this node's paths."""
        if self._prepared is None:
            raise RuntimeError("the worker is not started")
        target = self._prepared.workdir / "contexts" / str(index)
        spec = stage_context(
            value,
            target,
            policy=self._prepared.staging,
            lazy_over_bytes=self._settings.lazy_context_bytes,
        )
        return spec, spec.get("kind") != "corpus" and not spec.get("lazy")

    def unstage(self, index: int) -> None:
        """Remove a staged context the worker has loaded."""
        if self._prepared is not None:
            shutil.rmtree(self._prepared.workdir / "contexts" / str(index), ignore_errors=True)

    def close(self) -> None:
        """Kill the worker, wait for it, free its uid slot and directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.kill()
        if self._pump_thread is not None:
            self._pump_thread.join(10)
        with self._send_lock:
            for fd in [self._to_worker, *self._fds]:
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._to_worker = -1
            self._fds = []
        if self._prepared is not None:
            self._prepared.release()
