"""Replay-stable randomness for the cells of a journaled run (stdlib only; runs in the worker).

While a journaled cell runs, ``os.urandom``, ``os.getrandom``, ``random.SystemRandom``,
everything in ``secrets``, ``uuid.uuid4``, the random node and clock sequence of
``uuid.uuid1``, and ``random.Random()`` (or ``random.seed()``) without a seed draw from a
stream keyed by a seed the host gives the cell: SHAKE-256 in counter mode, so a replay
of the cell draws the same bytes in the same order. Outside those cells, and in runs
without a journal, the real OS entropy is used. C-level readers (``ssl.RAND_bytes``, the
``hashlib`` and ``_random`` C code seeding themselves) are not covered.
"""

from __future__ import annotations

import importlib
import operator
import os as _os
import random as _random
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol, cast


class _Shake(Protocol):
    def digest(self, length: int, /) -> bytes: ...


def _load_shake() -> Callable[[bytes], _Shake]:
    try:  # the C module alone: hashlib loads OpenSSL too, ten times slower to import
        module = importlib.import_module("_sha3")
    except ImportError:
        module = importlib.import_module("hashlib")
    return cast(Callable[[bytes], _Shake], module.shake_256)


shake_256 = _load_shake()
_real_urandom = _os.urandom
_real_getrandom: Any = getattr(_os, "getrandom", None)
_real_seed = _random.Random.seed
_BLOCK = 4096  # bytes per counter value: one hash call serves many small reads


class _Stream:
    """Bytes from SHAKE-256 over the key and a block counter: a pseudorandom function of
    the seed (a sponge has no length extension, so the key may simply prefix the input)."""

    def __init__(self, seed: bytes) -> None:
        self._key = shake_256(b"rlm-entropy\0" + seed).digest(64)
        self._forks = 0
        self._counter = 0
        self._buffer = b""

    def read(self, size: int) -> bytes:
        data = bytearray(self._buffer[:size])
        self._buffer = self._buffer[size:]
        while len(data) < size:
            counted = self._key + self._counter.to_bytes(16, "little")
            block = shake_256(counted).digest(_BLOCK)
            self._counter += 1
            need = size - len(data)
            data += block[:need]
            self._buffer = block[need:]
        return bytes(data)

    def count_fork(self) -> None:
        self._forks += 1

    def forked(self) -> _Stream:
        """A forked child's own stream: the parent's stream must not repeat in the child,
        and the n-th fork of a replay gets the n-th child's stream again."""
        return _Stream(self._key + self._forks.to_bytes(8, "little"))


_lock = threading.Lock()
_stream: _Stream | None = None


def start(seed: str) -> None:
    """Draw from the stream of ``seed`` until ``stop``; installs the hooks the first time."""
    global _stream
    _install()
    with _lock:
        _stream = _Stream(seed.encode())


def stop() -> None:
    """Back to the real OS entropy (between cells)."""
    global _stream
    with _lock:
        _stream = None


def urandom(size: int) -> bytes:
    """``os.urandom``: the cell's stream while a journaled cell runs, the OS otherwise."""
    size = operator.index(size)
    if size < 0:
        raise ValueError("negative argument not allowed")
    with _lock:
        if _stream is not None:
            return _stream.read(size)
    return _real_urandom(size)


def _getrandom(size: int, flags: int = 0) -> bytes:
    if _stream is None:
        return _real_getrandom(size, flags)
    return urandom(size)


def _seed(self: _random.Random, a: Any = None, version: int = 2) -> None:
    """``Random.seed``: no seed means one drawn from the cell's stream."""
    if a is None and _stream is not None:
        a = int.from_bytes(urandom(32), "big")
    _real_seed(self, a, version)


def _generate_time_safe() -> tuple[bytes, int | None]:
    """What ``uuid.uuid1()`` asks the C library for (the real clock and the MAC address):
    in a journaled cell, uuid1's Python path with the replay-stable clock, a random node
    with the multicast bit set (as RFC 4122 asks of a node that is not a MAC address) and a
    random clock sequence."""
    if _stream is None:
        return _real_generate_time_safe()
    import uuid  # loaded: its uuid1 is the caller

    node = int.from_bytes(urandom(6), "big") | (1 << 40)
    clock_seq = int.from_bytes(urandom(2), "big") & 0x3FFF
    return uuid.uuid1(node, clock_seq).bytes, None


_real_generate_time_safe: Any = None


def _before_fork() -> None:
    if _stream is not None:
        _stream.count_fork()


def _after_fork_in_child() -> None:
    global _lock, _stream
    _lock = threading.Lock()  # another thread may have held it at the fork
    if _stream is not None:
        _stream = _stream.forked()


def _install_uuid1() -> None:
    """Replace the C generator ``uuid`` binds when it is imported (without importing
    ``uuid`` itself, which pulls in ``platform``)."""
    global _real_generate_time_safe
    try:
        c_uuid = importlib.import_module("_uuid")
    except ImportError:
        return  # uuid1's Python path: stable clock and random, and this machine's node
    _real_generate_time_safe = getattr(c_uuid, "generate_time_safe", None)
    if _real_generate_time_safe is None:
        return
    c_uuid.generate_time_safe = _generate_time_safe  # pyright: ignore[reportAttributeAccessIssue]
    loaded = sys.modules.get("uuid")
    if loaded is not None and getattr(loaded, "_generate_time_safe", None) is not None:
        loaded._generate_time_safe = _generate_time_safe  # pyright: ignore[reportAttributeAccessIssue]


def _install() -> None:
    if _os.urandom is urandom:
        return
    _os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    _install_uuid1()
    _os.urandom = urandom
    if _real_getrandom is not None:
        _os.getrandom = _getrandom
    # SystemRandom and secrets read random's own reference to os.urandom.
    _random._urandom = urandom  # pyright: ignore[reportAttributeAccessIssue]
    _random.Random.seed = _seed
    # The module-level random.seed is a method bound before the patch.
    _random.seed = _random._inst.seed  # pyright: ignore[reportPrivateUsage]
