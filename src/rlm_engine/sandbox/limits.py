"""Resource limits of one sandbox (stdlib only: the worker applies the rlimits itself).

The worker sets its own rlimits first thing, before it reads any command, so every cell
and every process a cell starts inherits them; an unprivileged process can lower its
hard limits but never raise them again.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlm_engine.sandbox.worker_limits import apply_rlimits

__all__ = ["MIB", "Limits", "apply_rlimits"]

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What one sandbox may use. ``0`` disables a limit.

    ``memory_mb`` is the address-space backstop (``RLIMIT_AS``) and, where cgroups are
    writable, ``memory.max``; it must leave room for memory-mapped contexts.
    ``cpu_s`` is the whole-sandbox CPU budget: the worker is killed by ``SIGXCPU``/
    ``SIGKILL`` once it has used that much CPU time over its life.
    ``nproc`` bounds processes and threads of the sandbox's uid (it only binds a
    non-root uid, hence the per-slot uids) and, with cgroups, ``pids.max``.
    ``disk_mb`` sizes each private tmpfs (the working directory and ``/tmp``).
    ``hard_output_chars`` is the output volume above which a cell is killed.
    """

    memory_mb: int = 4096
    cpu_s: int = 3600
    nproc: int = 64
    nofile: int = 256
    fsize_mb: int = 1024
    disk_mb: int = 512
    cpu_quota: float = 1.0
    """CPUs' worth of time per second under cgroups (``cpu.max``)."""
    hard_output_chars: int = 256_000_000

    def __post_init__(self) -> None:
        for name in ("memory_mb", "cpu_s", "nproc", "nofile", "fsize_mb", "disk_mb"):
            if getattr(self, name) < 0:
                raise ValueError(f"Limits.{name} must not be negative")
        if self.cpu_quota < 0 or self.hard_output_chars < 0:
            raise ValueError("Limits.cpu_quota and hard_output_chars must not be negative")

    def to_arg(self) -> str:
        """The worker's ``--rlimits`` argument: ``as,cpu,nproc,nofile,fsize`` in units
        of bytes, seconds and counts."""
        return ",".join(
            str(value)
            for value in (
                self.memory_mb * MIB,
                self.cpu_s,
                self.nproc,
                self.nofile,
                self.fsize_mb * MIB,
            )
        )
