"""A host-side watchdog over one sandbox's whole process tree: memory and /tmp inodes.

Rlimits bind one process at a time, so a cell that forks children each under
``RLIMIT_AS`` could use many times its budget. Where no writable cgroup v2 tree exists
(cgroup v1 hosts, containers), this thread sums the anonymous memory of every process of
the sandbox, as the host's ``/proc`` sees them, every ``interval_s``; over the budget it
kills them all and reports a typed stop. It also counts the inodes of the sandbox's
tmpfs mounts, which bubblewrap sizes in bytes only (its ``--size`` has no ``nr_inodes``).

Cost: one ``children`` read per task and one ``statm`` read per process of the sandbox,
one ``statvfs`` per mount: about 0.4-0.7 ms of CPU per sample for an idle sandbox
(launcher, bubblewrap's init, the worker), under 1% of a core at the 100 ms interval.
Between two samples a cell can allocate a few hundred MiB more: the budget is enforced
to within that, and the per-process ``RLIMIT_AS`` bounds a single allocation. The
exact figure (``Pss_Anon`` from ``smaps_rollup``, which shares copy-on-write pages
between forked children instead of counting them in each) is read only when the cheap
sum is already over the budget.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rlm_engine.sandbox.host_process import WorkerProcess
    from rlm_engine.sandbox.limits import Limits
    from rlm_engine.sandbox.local_launch import PreparedWorker

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
INTERVAL_S = 0.1
StopKind = Literal["memory", "inodes"]


@dataclass(frozen=True, slots=True)
class Stop:
    """Why the watchdog killed the sandbox; ``message`` is what the cell's error says."""

    kind: StopKind
    message: str


def memory_message(budget_mb: int, used_bytes: int = 0) -> str:
    seen = f"; {used_bytes // MIB} MiB when it was stopped" if used_bytes else ""
    return (
        f"MemoryLimitExceeded: the cell used more than {budget_mb} MiB in all (the REPL and "
        f"every process it started{seen}), so the sandbox was killed. Process the data in "
        "chunks (iterate over the context or a file instead of loading it whole, delete "
        "large objects you no longer need), or raise the limit with --memory-mb / "
        "RLM(memory_mb=...)."
    )


def inode_message(limit: int, mount: str, used: int) -> str:
    return (
        f"DiskLimitExceeded: the cell created more than {limit:,} files and directories "
        f"in {mount} ({used:,} when it was stopped), so the sandbox was killed. Write "
        "fewer, larger files (one JSON or JSONL file instead of one file per item)."
    )


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        with (
            contextlib.suppress(OSError, ValueError),
            open(f"/proc/{pid}/task/{tid}/children") as handle,
        ):
            found += [int(part) for part in handle.read().split()]
    return found


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants. Complete for an isolated sandbox: an orphan
    (a double fork, ``setsid``) is adopted by the init of the sandbox's pid namespace,
    itself in the tree, so no scan of the whole of ``/proc`` is needed."""
    seen: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo += _children(pid)
    return seen


def anon_bytes(pid: int) -> int:
    """Resident memory that is not file-backed or shared (statm: resident - shared)."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            fields = handle.read().split()
        return max(0, int(fields[1]) - int(fields[2])) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def pss_anon_bytes(pid: int) -> int:
    """Proportional anonymous memory: pages shared after a fork count once in all."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss_Anon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return anon_bytes(pid)


def used_inodes(path: str) -> int | None:
    try:
        info = os.statvfs(path)
    except OSError:
        return None
    return info.f_files - info.f_ffree


class Watchdog:
    """Watches one sandbox from a daemon thread; ``on_stop`` runs in that thread, once,
    before every process of the sandbox gets ``SIGKILL``."""

    def __init__(
        self,
        *,
        root_pid: int,
        memory_mb: int,
        on_stop: Callable[[Stop], None],
        inode_limit: int = 0,
        mounts: Sequence[str] = (),
        interval_s: float = INTERVAL_S,
    ) -> None:
        self._root = root_pid
        self._budget_mb = memory_mb
        self._inode_limit = inode_limit
        self._mounts = tuple(mounts)
        self._on_stop = on_stop
        self._interval = interval_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rlm-sandbox-watchdog", daemon=True)
        self.stop: Stop | None = None
        self.samples = 0
        self.cpu_s = 0.0
        """CPU time the watchdog thread itself has used (its own cost)."""
        self.peak_bytes = 0

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop at the next tick (without waiting: this may run on an event loop)."""
        self._done.set()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout=timeout_s)

    def pids(self) -> list[int]:
        return tree_pids(self._root)

    def check(self) -> Stop | None:
        """One sample: the stop it calls for, or None."""
        pids = self.pids()
        if self._budget_mb:
            budget = self._budget_mb * MIB
            used = sum(anon_bytes(pid) for pid in pids)
            if used > budget:
                used = sum(pss_anon_bytes(pid) for pid in pids)
            self.peak_bytes = max(self.peak_bytes, used)
            if used > budget:
                return Stop("memory", memory_message(self._budget_mb, used))
        if self._inode_limit:
            for mount in self._mounts:
                count = used_inodes(mount)
                if count is not None and count > self._inode_limit:
                    shown = mount.split("/root", 1)[-1] or "/"
                    return Stop("inodes", inode_message(self._inode_limit, shown, count))
        return None

    def _run(self) -> None:
        began = time.thread_time()
        try:
            while not self._done.wait(self._interval):
                if not os.path.exists(f"/proc/{self._root}"):
                    return
                stop = self.check()
                self.samples += 1
                self.cpu_s = time.thread_time() - began
                if stop is not None:
                    self._trip(stop)
                    return
        finally:
            self.cpu_s = time.thread_time() - began

    def _trip(self, stop: Stop) -> None:
        self.stop = stop
        self._on_stop(stop)
        for pid in self.pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def start_watchdog(
    prepared: PreparedWorker, link: WorkerProcess, limits: Limits
) -> Watchdog | None:
    """Watch a started local worker, or None when there is nothing to watch. Under
    bubblewrap the tmpfs mounts are counted through the worker's ``/proc/PID/root``."""
    root = link.pid
    if root is None or not (limits.memory_mb or limits.tmp_inodes):
        return None
    mounts: list[str] = []
    if prepared.level == "bubblewrap" and link.worker_pid is not None:
        inside = f"/proc/{link.worker_pid}/root"
        mounts = [f"{inside}/tmp", f"{inside}{prepared.launch.home}"]
    watchdog = Watchdog(
        root_pid=root,
        memory_mb=limits.memory_mb,
        on_stop=lambda stop: link.stop_from_thread(stop.kind, stop.message),
        inode_limit=limits.tmp_inodes,
        mounts=mounts,
    )
    watchdog.start()
    return watchdog
