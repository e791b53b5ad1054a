"""Recorded and replayed precise clocks for the cells of a journaled run (stdlib only).

In a journaled cell ``time.monotonic``, ``time.perf_counter`` and their ``_ns`` forms read
one clock: the cell's start (its journaled wall-clock start, counted from 2020, and never
before a value read earlier) plus the real time since then, so timing code measures real
computing time. The worker records what the cell read, as nanoseconds after the cell's
start (the first ``MAX_READS`` reads), and the host journals them with the cell. A replay
is given that sequence and returns it in order; reads past its end continue from the last
replayed value in real time. Reads are serialised by a lock, so threads always see a
non-decreasing clock, but threads racing to read may replay in another order than they
first read. C-level readers (``time.clock_gettime``, ``threading``'s and ``queue``'s
timeouts) keep the real clock.
"""

from __future__ import annotations

import os
import threading
import time as _time
from collections.abc import Sequence

MAX_READS = 10_000
"""Reads recorded per cell; a replay reads on in real time after them."""

EPOCH_NS = 1_577_836_800 * 10**9
"""2020-01-01 UTC: the clock counts from here, which keeps float seconds precise to
tens of nanoseconds."""

_real_ns = _time.monotonic_ns
_lock = threading.Lock()
_origin: int | None = None  # the running cell's start on this clock
_anchor_real = 0
_anchor = 0  # the value read at _anchor_real (real time runs on from there)
_last: int | None = None
_replay: tuple[int, ...] = ()
_next = 0
_recording = False
_recorded: list[int] = []


def start(base_ns: int, replay: Sequence[int] | None = None) -> None:
    """Start a cell whose wall clock starts at ``base_ns``; ``replay`` holds the reads a
    first run of the cell recorded (``None`` on a first run)."""
    global _origin, _anchor_real, _anchor, _replay, _next, _recording, _recorded
    _install()
    with _lock:
        origin = base_ns - EPOCH_NS
        if _last is not None and _last > origin:
            origin = _last  # the wall clock went back: this clock must not
        _origin, _anchor_real, _anchor = origin, _real_ns(), origin
        _replay, _next = tuple(replay or ()), 0
        _recording, _recorded = True, []


def finish() -> list[int]:
    """End the cell's recording and return its reads (the clock keeps running)."""
    global _recording, _recorded
    with _lock:
        reads, _recording, _recorded = _recorded, False, []
    return reads


def read_ns() -> int:
    global _anchor_real, _anchor, _last, _next
    with _lock:
        now = _real_ns()
        if _origin is None:
            return now
        if _recording and _next < len(_replay):
            value = _origin + _replay[_next]
            _next += 1
            _anchor_real, _anchor = now, value
        else:
            value = _anchor + now - _anchor_real
        if _last is not None and value < _last:
            value = _last
        _last = value
        if _recording and len(_recorded) < MAX_READS:
            _recorded.append(value - _origin)
        return value


def read() -> float:
    return read_ns() / 1e9


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork


def _install() -> None:
    if _time.monotonic is read:
        return
    os.register_at_fork(after_in_child=_after_fork_in_child)
    _time.monotonic = read
    _time.perf_counter = read
    _time.monotonic_ns = read_ns
    _time.perf_counter_ns = read_ns
