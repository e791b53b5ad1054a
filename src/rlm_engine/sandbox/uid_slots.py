"""Dedicated unprivileged uids for sandboxes started by root, one per live sandbox.

``RLIMIT_NPROC`` counts every process of a uid and is ignored for root, so a fork bomb
is only stopped when each sandbox runs as a uid of its own. A slot is held by an
``flock`` on a small file, so several host processes on one machine never share a uid
and a crashed host frees its slots automatically. Slots are handed out round-robin:
the processes of a sandbox just torn down may still count against its uid for a moment.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import threading
from pathlib import Path

FIRST_UID = 60000
SLOT_COUNT = 1000
LOCK_DIR = Path("/run/rlm-sandbox-uids")


class NoFreeSlot(OSError):
    """Every sandbox uid is in use."""


class UidSlot:
    """A held uid (also used as the gid). ``release()`` gives it back."""

    def __init__(self, uid: int, fd: int) -> None:
        self.uid = uid
        self._fd = fd

    def release(self) -> None:
        """Give the uid back (idempotent)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing drops the flock
            self._fd = -1

    def __repr__(self) -> str:
        return f"UidSlot(uid={self.uid})"


class UidAllocator:
    """Hands out uids ``first .. first + count - 1``, skipping those locked elsewhere."""

    def __init__(
        self, first: int = FIRST_UID, count: int = SLOT_COUNT, lock_dir: Path = LOCK_DIR
    ) -> None:
        self._first = first
        self._count = count
        self._lock_dir = lock_dir
        self._mutex = threading.Lock()
        # Start at a point that differs between host processes, so two hosts rarely
        # probe the same locks.
        self._next = itertools.count(os.getpid() % count)

    def acquire(self) -> UidSlot:
        """Lock the next free uid; ``NoFreeSlot`` if all are taken."""
        self._lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._mutex:
            for _ in range(self._count):
                uid = self._first + next(self._next) % self._count
                fd = os.open(self._lock_dir / f"{uid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                os.set_inheritable(fd, False)
                return UidSlot(uid, fd)
        raise NoFreeSlot(f"all {self._count} sandbox uids from {self._first} are in use")


DEFAULT_ALLOCATOR = UidAllocator()
