"""Host side of the replay-stable clock for sandboxes that start it with setup cells.

A sandbox that cannot pass a cell's ``CellClock`` with the ``exec`` command (a remote
worker that may be an older installation, a sandbox without ``execute_at``) runs
``setup_code`` before the cell and ``FINISH_CODE`` after it; ``finished_reads`` reads the
precise-clock reads from the output of the latter.
"""

from __future__ import annotations

import json

from rlm_engine.sandbox.base import CellClock
from rlm_engine.sandbox.host_protocol import ProtocolViolation, parse_clock_reads

FINISH_CODE = (
    "import rlm_engine.sandbox.worker_clock as _c\n"
    "import json as _j\n"
    "print(_j.dumps(_c.finish() if hasattr(_c, 'finish') else []))\n"
    "del _c, _j"
)


def setup_code(clock: float | CellClock) -> str:
    """Start the REPL's clock; a worker older than the entropy seed starts the wall clock."""
    if not isinstance(clock, CellClock):
        clock = CellClock(float(clock))
    reads = list(clock.reads) if clock.reads is not None else None
    return (
        "import rlm_engine.sandbox.worker_clock as _c\n"
        "try:\n"
        f"    _c.start({clock.start!r}, {clock.entropy!r}, {reads!r})\n"
        "except TypeError:\n"
        f"    _c.start({clock.start!r})\n"
        "del _c"
    )


def finished_reads(output: str) -> tuple[int, ...]:
    """The reads ``FINISH_CODE`` printed; none when the output is not such a list."""
    try:
        return parse_clock_reads(json.loads(output.strip() or "[]"))
    except (ValueError, ProtocolViolation):
        return ()
