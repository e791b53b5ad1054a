"""Which process owns a running run, and whether that process is still alive.

A run left "running" by a process that no longer exists was interrupted (a crash, `kill -9`,
a reboot). On the owner's host the check is exact: the pid must exist, not be a zombie, and
have the same start time as when it took the run (pids get reused). From another host only
the run's heartbeat can tell.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ProcessOwner:
    """A process identity that survives pid reuse: host, pid and the pid's start time."""

    host: str
    pid: int
    token: str


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is parenthesised and may contain spaces: split after it.
    return raw[raw.rfind(")") + 2 :].split()


def _start_ticks(pid: int) -> str | None:
    fields = _stat_fields(pid)
    # After the command name: state is field 3, start time is field 22 (1-based).
    return fields[19] if fields and len(fields) > 19 else None


@cache
def current_owner() -> ProcessOwner:
    """This process as a run owner."""
    pid = os.getpid()
    return ProcessOwner(socket.gethostname(), pid, f"{pid}:{_start_ticks(pid) or ''}")


def refresh_owner() -> ProcessOwner:
    """Forget the cached identity (after a fork the child is a different process)."""
    current_owner.cache_clear()
    return current_owner()


def owner_is_alive(host: str | None, pid: int | None, token: str | None) -> bool | None:
    """True/False when it can be known from here; None for another host's process."""
    if host != socket.gethostname() or pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    fields = _stat_fields(pid)
    if fields is None:
        return True  # no /proc: the pid exists, which is all we can tell
    if fields[0] in ("Z", "X"):
        return False  # killed, not yet reaped by its parent
    started = token.partition(":")[2] if token else ""
    return not started or len(fields) <= 19 or started == fields[19]
