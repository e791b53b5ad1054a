"""Live progress of a run: a status line on a terminal, plain lines otherwise.

The status line counts what the events say, never a guess: a model sub-call is *queued*
from its ``SubcallStarted`` (the REPL asked for it) until its ``ModelCallStarted`` (it holds
a concurrency slot and goes to the provider), *in flight* until its ``ModelCallFinished`` or
``ModelCallFailed`` (both emitted before the slot is given back), then *done* or *failed*
at its ``SubcallFinished``. So "in flight" never exceeds ``--max-concurrency``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from rlm_engine.errors import RunInterrupted
from rlm_engine.events import (
    CANCELLED,
    CellFinished,
    CellStarted,
    Event,
    IterationStarted,
    ModelCallFailed,
    ModelCallFinished,
    ModelCallStarted,
    RunFinished,
    RunStarted,
    SandboxRestarted,
    SubcallFinished,
    SubcallStarted,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text


def elapsed(seconds: float) -> str:
    """``42s``, ``3m07s``, ``2h05m``: whole units, so a ticking line does not jitter."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


@dataclass
class Counters:
    """What a run is doing, from its events (those of one run id, any depth)."""

    run_id: str = ""
    iteration: int = 0
    root_waiting: bool = False
    """The depth-0 root model is generating its next turn."""
    cell: str = ""
    """The depth-0 cell running now, as ``iteration.cell``."""
    cells_running: int = 0
    cells_done: int = 0
    queued: set[str] = field(default_factory=set[str])
    """Node ids of model sub-calls waiting for a concurrency slot."""
    in_flight: set[str] = field(default_factory=set[str])
    """Node ids of model sub-calls holding a slot: at the provider."""
    children: set[str] = field(default_factory=set[str])
    """Node ids of child RLMs (``rlm_query``) running."""
    subcalls_done: int = 0
    subcalls_failed: int = 0
    subcalls_cut: int = 0
    """Sub-calls closed because they were cancelled: unfinished, not failed."""
    tokens: int = 0
    cost_usd: float = 0.0
    priced: int = 0
    unpriced: int = 0
    stop_reason: str = ""
    """Set by the root's ``RunFinished``."""

    def update(self, event: Event) -> None:
        if isinstance(event, RunStarted | IterationStarted | RunFinished):
            self._run_event(event)
        elif isinstance(event, ModelCallStarted | ModelCallFinished | ModelCallFailed):
            self._model_event(event)
        elif isinstance(event, SubcallStarted):
            if event.kind == "llm":
                self.queued.add(event.node_id)
            elif event.kind == "rlm":
                self.children.add(event.node_id)
        elif isinstance(event, SubcallFinished):
            self.queued.discard(event.node_id)
            self.in_flight.discard(event.node_id)
            self.children.discard(event.node_id)
            if event.ok:
                self.subcalls_done += 1
            elif (event.error or "").startswith(CANCELLED):
                self.subcalls_cut += 1
            else:
                self.subcalls_failed += 1
        elif isinstance(event, CellStarted):
            self.cells_running += 1
            if event.depth == 0:
                self.cell = f"{event.iteration}.{event.cell_index + 1}"
        elif isinstance(event, CellFinished):
            self._cell_finished(event)

    def _run_event(self, event: RunStarted | IterationStarted | RunFinished) -> None:
        if event.depth != 0:
            return
        if isinstance(event, RunStarted):
            self.run_id = event.run_id
        elif isinstance(event, IterationStarted):
            self.iteration = event.iteration
        else:
            # A cancelled run has no outcome of its own: it is shown as it was cut off.
            if event.stop_reason != "cancelled":
                self.stop_reason = event.stop_reason
            self.root_waiting = False

    def _model_event(self, event: ModelCallStarted | ModelCallFinished | ModelCallFailed) -> None:
        started = isinstance(event, ModelCallStarted)
        if event.role == "root" and event.depth == 0:
            self.root_waiting = started
        elif event.role == "sub":
            if started:
                self.queued.discard(event.node_id)
                self.in_flight.add(event.node_id)
            else:
                self.in_flight.discard(event.node_id)
        if isinstance(event, ModelCallFinished):
            self.tokens += event.input_tokens + event.output_tokens
            if event.cost_usd is None:
                self.unpriced += 1
            else:
                self.priced += 1
                self.cost_usd += event.cost_usd

    def _cell_finished(self, event: CellFinished) -> None:
        self.cells_running = max(self.cells_running - 1, 0)
        self.cells_done += 1
        if event.depth == 0:
            self.cell = ""
        # A cell that ends (interrupted, timed out) takes its sub-calls with it, whether or
        # not they reported their own end.
        prefix = event.node_id + "/"
        for pending in (self.queued, self.in_flight, self.children):
            pending.difference_update([n for n in pending if n.startswith(prefix)])

    def cost(self) -> str:
        if not self.unpriced:
            return f"cost ${self.cost_usd:.4f}"
        if not self.priced:
            return "cost unknown"
        return f"cost ≥${self.cost_usd:.4f} (+{self.unpriced} unpriced)"

    def state(self) -> str:
        if self.stop_reason:
            return f"finished: {self.stop_reason}"
        if self.root_waiting:
            return "waiting for the root model"
        if self.cell:
            return f"running cell {self.cell}"
        return "starting" if self.iteration == 0 else "working"

    def line(self, elapsed_s: float) -> str:
        """The live status line."""
        subcalls = (
            f"sub-calls {len(self.in_flight)} in flight, {len(self.queued)} queued, "
            f"{self.subcalls_done} done"
        )
        if self.subcalls_failed:
            subcalls += f", {self.subcalls_failed} failed"
        if self.children:
            subcalls += f", {len(self.children)} child RLMs running"
        return self._joined(elapsed_s, self.state(), subcalls)

    def final_line(self, elapsed_s: float, ended: str | None = None) -> str:
        """The line that stays: the outcome (``ended`` for a run that sent no
        ``RunFinished``, e.g. interrupted) and the sub-calls it did not finish."""
        subcalls = f"sub-calls {self.subcalls_done} done"
        if self.subcalls_failed:
            subcalls += f", {self.subcalls_failed} failed"
        unfinished = len(self.in_flight) + len(self.queued) + len(self.children) + self.subcalls_cut
        if unfinished:
            subcalls += f", {unfinished} unfinished"
        return self._joined(elapsed_s, ended or self.state(), subcalls)

    def _joined(self, elapsed_s: float, state: str, subcalls: str) -> str:
        return " | ".join(
            [
                f"run {self.run_id or '(not started)'}",
                f"elapsed {elapsed(elapsed_s)}",
                f"iteration {self.iteration}",
                state,
                subcalls,
                f"tokens {self.tokens:,}",
                self.cost(),
            ]
        )


def _plain_line(event: Event) -> str | None:
    indent = "  " * event.depth
    if isinstance(event, RunStarted) and event.depth == 0:
        return f"run {event.run_id} started"
    if isinstance(event, IterationStarted):
        return f"{indent}iteration {event.iteration}"
    if isinstance(event, CellFinished):
        return (
            f"{indent}  cell {event.iteration}.{event.cell_index + 1}: {event.status} "
            f"({event.output_chars:,} chars, {event.duration_s:.2f}s)"
        )
    if isinstance(event, SandboxRestarted):
        return f"{indent}  sandbox restarted: {event.reason}"
    if isinstance(event, RunFinished) and event.depth == 0 and event.stop_reason != "cancelled":
        return f"finished: {event.stop_reason} after {event.iterations} iterations"
    return None


def _ended(exc: BaseException | None) -> str:
    """What the final line says of a run that sent no ``RunFinished``."""
    if exc is None:
        return "stopped"
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError | RunInterrupted):
        return "interrupted"
    return f"stopped: {type(exc).__name__}"


class Progress:
    """Consumes events; a rich live line on a TTY, plain lines on other streams. Either
    way a last line with the run's outcome stays when the run ends."""

    def __init__(self, stream: TextIO | None = None, *, verbose: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self.counters = Counters()
        self._started = time.monotonic()
        self._console: Console | None = None
        self._live: Live | None = None
        if self.stream.isatty() and not verbose:
            # rich only for a terminal: it takes a while to import, and pipes never need it.
            from rich.console import Console
            from rich.live import Live

            self._console = Console(file=self.stream)
            # The line is built when rich refreshes (8 times a second), not per event: a
            # fan-out of thousands of sub-calls costs the run nothing, and the elapsed time
            # ticks while no event comes (the root model thinking).
            self._live = Live(
                console=self._console,
                refresh_per_second=8,
                transient=True,
                get_renderable=self._renderable,
            )

    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    def _renderable(self) -> Text:
        from rich.text import Text

        return Text(self.counters.line(self.elapsed_s()))

    def __call__(self, event: Event) -> None:
        self.counters.update(event)
        if self._live is not None:
            return
        line = _plain_line(event)
        if line is not None and (self.verbose or event.depth == 0):
            print(line, file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        finished = bool(self.counters.stop_reason)
        last = self.counters.final_line(self.elapsed_s(), None if finished else _ended(exc))
        if self._live is not None and self._console is not None:
            self._live.stop()
            # The live line goes; this one stays, with the outcome instead of the activity.
            self._console.print(last, markup=False, highlight=False)
        elif not finished:  # a finished run's plain log already ends with its outcome
            print(last, file=self.stream, flush=True)
