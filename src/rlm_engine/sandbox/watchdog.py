"""A host-side watchdog over one sandbox's whole process tree: memory, tasks, /tmp inodes.

Rlimits bind one process at a time, so a cell that forks children each under
``RLIMIT_AS`` could use many times its budget. Where no writable cgroup v2 tree exists
(cgroup v1 hosts, containers), this thread sums the anonymous memory of every process of
the sandbox, as the host's ``/proc`` sees them, every ``interval_s``; over the budget it
kills them all and reports a typed stop. It also counts the inodes of the sandbox's
tmpfs mounts, which bubblewrap sizes in bytes only (its ``--size`` has no ``nr_inodes``),
and the tasks (processes and threads) of the tree below the launcher, which bounds the
sandbox's processes where ``RLIMIT_NPROC`` cannot (no uid of its own: the ``none`` level,
bubblewrap in a user namespace). The launcher's own processes (the isolation tool, the
pid namespace's init, the ``none`` level's subreaper) are not counted and are killed last,
so that an orphan re-parented to one of them cannot slip out while the tree is killed.

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
StopKind = Literal["memory", "processes", "inodes"]
KILL_ROUNDS = 200
"""Passes over the tree when killing it: each kills what the last one found forking."""


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


def process_message(limit: int, used: int) -> str:
    return (
        f"ProcessLimit: the cell ran more than {limit} processes and threads in all "
        f"({used} when it was stopped), so the sandbox was killed. Wait for children to "
        "finish (or use a small pool) before starting more, or raise Limits(nproc=...)."
    )


def inode_message(limit: int, mount: str, used: int) -> str:
    return (
        f"DiskLimitExceeded: the cell created more than {limit:,} files and directories "
        f"in {mount} ({used:,} when it was stopped), so the sandbox was killed. Write "
        "fewer, larger files (one JSON or JSONL file instead of one file per item)."
    )


def _children(pid: int) -> tuple[list[int], int]:
    """The children of every task of ``pid``, and its number of tasks (threads)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found, 0
    for tid in tasks:
        with (
            contextlib.suppress(OSError, ValueError),
            open(f"/proc/{pid}/task/{tid}/children") as handle,
        ):
            found += [int(part) for part in handle.read().split()]
    return found, len(tasks)


def tree_tasks(root: int) -> dict[int, int]:
    """``root`` and all its descendants, each with its number of tasks. Complete for a
    sandbox: an orphan (a double fork, ``setsid``) is adopted by the init of the
    sandbox's pid namespace, or under the ``none`` level by its launcher (a child
    subreaper), both in the tree, so no scan of the whole of ``/proc`` is needed."""
    seen: dict[int, int] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        children, tasks = _children(pid)
        seen[pid] = tasks
        todo += children
    return seen


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants (see ``tree_tasks``)."""
    return list(tree_tasks(root))


def launcher_chain(root: int, worker: int | None) -> tuple[int, ...]:
    """The processes from ``root`` down to the worker, without it: each is the only child
    of the one before (the isolation tool, bubblewrap's init, the subreaper)."""
    if worker is None or worker == root:
        return ()
    chain: list[int] = []
    pid = root
    while pid != worker and len(chain) < 8:
        chain.append(pid)
        children, _ = _children(pid)
        if len(children) != 1:
            return ()  # not a chain (the tree changed): count and kill everything alike
        pid = children[0]
    return tuple(chain) if pid == worker else ()


def started_at(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), to tell it from a later process that
    reuses its number; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Still running: not gone and not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(") ", 1)[1][:1] not in "ZX"
    except (OSError, IndexError):
        return False


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
        task_limit: int = 0,
        launchers: Sequence[int] = (),
    ) -> None:
        self._root = root_pid
        self._budget_mb = memory_mb
        self._task_limit = task_limit
        # Each with its start time: a launcher that has exited is never signalled again
        # under a number the system has since given to another process.
        self._launchers = {pid: started_at(pid) for pid in launchers}
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
        self.peak_tasks = 0
        """The most tasks seen below the launcher in one sample."""

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop at the next tick (without waiting: this may run on an event loop)."""
        self._done.set()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout=timeout_s)

    def pids(self) -> list[int]:
        return list(self._tree())

    def _live_launchers(self) -> list[int]:
        return [
            pid
            for pid, began in self._launchers.items()
            if began is not None and started_at(pid) == began
        ]

    def _tree(self) -> dict[int, int]:
        """The tree's processes and their tasks, also below a launcher whose parent is
        gone (the host kills the process groups of the root and of the worker, not the
        subreaper, which is then re-parented while it still holds the cell's orphans)."""
        tasks = tree_tasks(self._root)
        for pid in self._live_launchers():
            if pid not in tasks:
                tasks.update(tree_tasks(pid))
        return tasks

    def check(self) -> Stop | None:
        """One sample: the stop it calls for, or None."""
        tasks = self._tree()
        pids = [pid for pid in tasks if pid not in self._launchers]
        if self._budget_mb:
            budget = self._budget_mb * MIB
            used = sum(anon_bytes(pid) for pid in pids)
            if used > budget:
                used = sum(pss_anon_bytes(pid) for pid in pids)
            self.peak_bytes = max(self.peak_bytes, used)
            if used > budget:
                return Stop("memory", memory_message(self._budget_mb, used))
        counted = sum(tasks[pid] for pid in pids)
        self.peak_tasks = max(self.peak_tasks, counted)
        if self._task_limit and counted > self._task_limit:
            return Stop("processes", process_message(self._task_limit, counted))
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
        self.kill_tree()

    def kill_tree(self) -> None:
        """SIGKILL the tree below the launcher pass after pass until nothing of it runs
        (a process may fork while it is killed; its orphans stay below the launcher),
        then the launcher's own processes."""
        for _ in range(KILL_ROUNDS):
            running = [p for p in self._tree() if p not in self._launchers and _alive(p)]
            if not running:
                break
            for pid in running:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        last = [p for p in self._tree() if p not in self._launchers]
        for pid in [*last, *self._live_launchers()]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def start_watchdog(
    prepared: PreparedWorker, link: WorkerProcess, limits: Limits
) -> Watchdog | None:
    """Watch a started local worker, or None when there is nothing to watch. Under
    bubblewrap the tmpfs mounts are counted through the worker's ``/proc/PID/root``."""
    root = link.pid
    if root is None or not (limits.memory_mb or limits.tmp_inodes or limits.nproc):
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
        # Where RLIMIT_NPROC binds (a uid of the sandbox's own) the kernel refuses the
        # task past the limit first and this never trips; elsewhere it is the limit.
        task_limit=limits.nproc,
        launchers=launcher_chain(root, link.worker_pid),
    )
    watchdog.start()
    return watchdog
