"""Replay-stable time and randomness for the REPL of a journaled run (stdlib only; in the worker).

Each cell starts its clock at the time the host journaled for it. Within the cell, every
read of ``time.time()``, ``time.time_ns()``, ``datetime.now()``, ``datetime.utcnow()``,
``datetime.today()`` and ``date.today()`` moves the clock on by one microsecond, and
``time.sleep(s)`` by ``s`` (after really sleeping). The same code therefore reads the same
times when the cell is replayed on resume. Durations measured with these reads leave out
computing time; ``time.monotonic()`` and ``time.perf_counter()`` measure real time and are
recorded and replayed instead (``worker_monotonic``). The cell's randomness (``os.urandom``,
``secrets``, ``uuid4``, ``SystemRandom``, unseeded ``Random()``) comes from a stream seeded
by the host for the cell (``worker_entropy``). C-level readers (``time.localtime()`` with
no argument, ``time.strftime`` without a tuple, ``time.clock_gettime``) are not covered.
The replacement date and datetime classes pass ``isinstance`` checks both ways and print
and pickle as the standard ones (their ``__name__`` is the dotted one that repr shows).
"""

from __future__ import annotations

import datetime as _datetime
import threading
import time as _time
from collections.abc import Sequence
from typing import Any

from rlm_engine.sandbox import worker_entropy, worker_monotonic

TICK_NS = 1_000

_real_time_ns = _time.time_ns
_real_sleep = _time.sleep
_real_date = _datetime.date
_real_datetime = _datetime.datetime
_lock = threading.Lock()
_base_ns: int | None = None
_elapsed_ns = 0


def _tick_ns() -> int:
    global _elapsed_ns
    with _lock:
        if _base_ns is None:
            return _real_time_ns()
        _elapsed_ns += TICK_NS
        return _base_ns + _elapsed_ns


def now() -> float:
    """The clock: the cell's journaled start plus what the cell has read and slept."""
    return _tick_ns() / 1e9


def start(base: float, entropy: str | None = None, reads: Sequence[int] | None = None) -> None:
    """Start a cell's clock at ``base`` (seconds since the epoch); installs it the first time.

    ``entropy`` seeds the cell's randomness (real OS entropy without it); ``reads`` are the
    precise-clock reads a first run of the cell recorded, to replay."""
    global _base_ns, _elapsed_ns
    _install()
    with _lock:
        _base_ns, _elapsed_ns = round(base * 1e9), 0
        base_ns = _base_ns
    worker_monotonic.start(base_ns, reads)
    if entropy is None:
        worker_entropy.stop()
    else:
        worker_entropy.start(entropy)


def finish() -> list[int]:
    """End a cell: real entropy again, and the precise-clock reads it recorded."""
    worker_entropy.stop()
    return worker_monotonic.finish()


def _sleep(seconds: float) -> None:
    global _elapsed_ns
    _real_sleep(seconds)
    with _lock:
        _elapsed_ns += max(0, round(float(seconds) * 1e9))


class _InstanceOfReal(type):
    """``isinstance`` checks against the real class, so values made elsewhere still pass."""

    def __instancecheck__(cls, instance: object) -> bool:
        real: type = cls.__dict__.get("_real", _real_datetime)
        return isinstance(instance, real)

    def __subclasscheck__(cls, subclass: type) -> bool:
        real: type = cls.__dict__.get("_real", _real_datetime)
        return issubclass(subclass, real)


class ReplayDate(_real_date, metaclass=_InstanceOfReal):
    _real = _real_date

    @classmethod
    def today(cls) -> Any:
        return cls.fromtimestamp(now())


class ReplayDatetime(_real_datetime, metaclass=_InstanceOfReal):
    _real = _real_datetime

    @classmethod
    def now(cls, tz: _datetime.tzinfo | None = None) -> Any:
        return cls.fromtimestamp(now(), tz)

    @classmethod
    def utcnow(cls) -> Any:
        moment = _real_datetime.fromtimestamp(now(), _datetime.UTC)
        return cls.combine(moment.date(), moment.time())

    @classmethod
    def today(cls) -> Any:
        return cls.fromtimestamp(now())


for _cls, _name in ((ReplayDate, "date"), (ReplayDatetime, "datetime")):
    # Reprs and pickles name the standard classes, as the real values do.
    _cls.__module__, _cls.__qualname__, _cls.__name__ = "datetime", _name, f"datetime.{_name}"


def _install() -> None:
    if _time.time is now:
        return
    _time.time = now
    _time.time_ns = _tick_ns
    _time.sleep = _sleep
    _datetime.date = ReplayDate
    _datetime.datetime = ReplayDatetime
