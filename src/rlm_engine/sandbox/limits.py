"""Resource limits of one sandbox (stdlib only: the worker applies the rlimits itself).

The worker sets its own rlimits first thing, before it reads any command, so every cell
and every process a cell starts inherits them; an unprivileged process can lower its
hard limits but never raise them again.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlm_engine.sandbox.worker_limits import apply_rlimits

__all__ = ["MIB", "Limits", "apply_rlimits", "process_limit_note"]

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What one sandbox may use. ``0`` disables a limit.

    ``memory_mb`` is one budget for the sandbox's whole process tree: the host's
    ``watchdog`` sums the anonymous memory of every process of the sandbox and kills it
    over the budget with a typed stop; where cgroups are writable ``memory.max`` (an
    eighth above it) is the kernel's backstop. The default, 2048 MiB, lets a 2-core
    24 GB machine run several sandboxes next to the host and its caches.
    ``address_space_mb`` is the per-process ``RLIMIT_AS`` backstop against one huge
    allocation (a single process then gets a catchable ``MemoryError`` rather than a
    kill); 0 means ``memory_mb``. Memory-mapped contexts count in the address space but
    not in the budget: raise it to map a context larger than about the budget.
    ``cpu_s`` is the whole-sandbox CPU budget: the worker is killed by ``SIGXCPU``/
    ``SIGKILL`` once it has used that much CPU time over its life.
    ``nproc`` bounds processes and threads of the sandbox's uid (it only binds a
    non-root uid, hence the per-slot uids), with cgroups ``pids.max`` (a systemd scope's
    ``TasksMax``); where none of these binds, the watchdog counts the tree's tasks and
    kills the sandbox over it.
    ``disk_mb`` sizes each private tmpfs (the working directory and ``/tmp``) in bytes;
    ``tmp_inodes`` bounds the files and directories in each (the watchdog counts them:
    bubblewrap cannot set ``nr_inodes``, and each empty file costs kernel memory).
    ``hard_output_chars`` is the output volume above which a cell is killed.
    """

    memory_mb: int = 2048
    address_space_mb: int = 0
    cpu_s: int = 3600
    nproc: int = 64
    nofile: int = 256
    fsize_mb: int = 1024
    disk_mb: int = 512
    tmp_inodes: int = 100_000
    cpu_quota: float = 1.0
    """CPUs' worth of time per second under cgroups (``cpu.max``)."""
    hard_output_chars: int = 256_000_000

    def __post_init__(self) -> None:
        names = ("memory_mb", "address_space_mb", "cpu_s", "nproc", "nofile", "fsize_mb")
        for name in (*names, "disk_mb", "tmp_inodes"):
            if getattr(self, name) < 0:
                raise ValueError(f"Limits.{name} must not be negative")
        if self.cpu_quota < 0 or self.hard_output_chars < 0:
            raise ValueError("Limits.cpu_quota and hard_output_chars must not be negative")

    @property
    def address_space_bytes(self) -> int:
        """The per-process ``RLIMIT_AS``; 0 when there is no memory limit at all."""
        if self.address_space_mb:
            return self.address_space_mb * MIB
        return (self.address_space_mb or self.memory_mb) * MIB

    def to_arg(self) -> str:
        """The worker's ``--rlimits`` argument: ``as,cpu,nproc,nofile,fsize`` in units
        of bytes, seconds and counts."""
        return ",".join(
            str(value)
            for value in (
                self.address_space_bytes,
                self.cpu_s,
                self.nproc,
                self.nofile,
                self.fsize_mb * MIB,
            )
        )


# What a cell sees when RLIMIT_NPROC refuses a fork or a thread (EAGAIN).
_PROCESS_LIMIT_SIGNS = ("BlockingIOError: [Errno 11]", "can't start new thread")


def process_limit_note(error: str | None, limits: Limits) -> str:
    """A line to add to a cell's error when it hit the process and thread limit."""
    if not error or not limits.nproc or not any(s in error for s in _PROCESS_LIMIT_SIGNS):
        return ""
    return (
        f"\nProcessLimit: the sandbox may run at most {limits.nproc} processes and threads "
        "in all; wait for children to finish (or use a small pool) before starting more."
    )
