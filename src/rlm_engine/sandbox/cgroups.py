"""cgroup v2 limits (pids, memory, CPU) for one sandbox, where the tree is writable.

A sandbox gets ``<root>/rlm-sandbox/<name>``. The launcher command writes its own pid
into ``cgroup.procs`` before it execs the isolation tool, so the worker and everything it
forks are born inside the cgroup: adding the pid after the start would race a fork bomb.
Hosts with cgroup v1 only (or a read-only tree) get no cgroup limits; the rlimits and the
pid namespace still apply.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from rlm_engine.sandbox.limits import MIB, Limits

CGROUP_ROOT = Path("/sys/fs/cgroup")
NEEDED = ("pids", "memory", "cpu")
CPU_PERIOD_US = 100_000


def usable_root(root: Path = CGROUP_ROOT) -> Path | None:
    """The directory to create sandbox cgroups in, or None when cgroup v2 with the
    pids, memory and cpu controllers is not writable here."""
    try:
        controllers = (root / "cgroup.controllers").read_text().split()
    except OSError:
        return None
    if any(name not in controllers for name in NEEDED):
        return None
    parent = root / "rlm-sandbox"
    try:
        parent.mkdir(exist_ok=True)
        enabled = (parent / "cgroup.subtree_control").read_text().split()
        missing = [name for name in NEEDED if name not in enabled]
        if missing:
            (root / "cgroup.subtree_control").write_text(" ".join(f"+{n}" for n in NEEDED))
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{n}" for n in NEEDED))
    except OSError:
        return None
    return parent if os.access(parent, os.W_OK) else None


class SandboxCgroup:
    """One sandbox's cgroup: created with its limits, removed on ``remove()``."""

    def __init__(self, parent: Path, name: str, limits: Limits) -> None:
        self.path = parent / name
        self.path.mkdir()
        if limits.nproc:
            (self.path / "pids.max").write_text(str(limits.nproc))
        if limits.memory_mb:
            (self.path / "memory.max").write_text(str(limits.memory_mb * MIB))
            # One OOM kill takes the whole sandbox, reported as a memory stop.
            with contextlib.suppress(OSError):
                (self.path / "memory.oom.group").write_text("1")
            with contextlib.suppress(OSError):  # absent when swap accounting is off
                (self.path / "memory.swap.max").write_text("0")
        if limits.cpu_quota:
            quota = max(1000, int(limits.cpu_quota * CPU_PERIOD_US))
            (self.path / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")

    @property
    def procs_file(self) -> Path:
        """Where the launcher writes its pid."""
        return self.path / "cgroup.procs"

    def oom_killed(self) -> bool:
        """Whether the kernel killed anything here for passing ``memory.max``."""
        try:
            text = (self.path / "memory.events").read_text()
        except OSError:
            return False
        counts = dict(line.split() for line in text.splitlines() if line.count(" ") == 1)
        return counts.get("oom_kill", "0") != "0"

    def remove(self) -> None:
        """Kill whatever is left inside and remove the cgroup (best effort)."""
        with contextlib.suppress(OSError):
            (self.path / "cgroup.kill").write_text("1")
        with contextlib.suppress(OSError):
            self.path.rmdir()
