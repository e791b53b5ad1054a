"""Live progress of a run: a status line on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from rlm_engine.events import (
    CellFinished,
    CellStarted,
    Event,
    IterationStarted,
    ModelCallFinished,
    RunFinished,
    SandboxRestarted,
    SubcallFinished,
    SubcallStarted,
)

if TYPE_CHECKING:
    from rich.live import Live


@dataclass
class Counters:
    iteration: int = 0
    cells_running: int = 0
    cells_done: int = 0
    subcalls_in_flight: int = 0
    subcalls_done: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0

    def update(self, event: Event) -> None:
        if isinstance(event, IterationStarted) and event.depth == 0:
            self.iteration = event.iteration
        elif isinstance(event, CellStarted):
            self.cells_running += 1
        elif isinstance(event, CellFinished):
            self.cells_running -= 1
            self.cells_done += 1
        elif isinstance(event, SubcallStarted):
            self.subcalls_in_flight += 1
        elif isinstance(event, SubcallFinished):
            self.subcalls_in_flight -= 1
            self.subcalls_done += 1
        elif isinstance(event, ModelCallFinished):
            self.tokens += event.input_tokens + event.output_tokens
            if event.cost_usd is None:
                self.unpriced += 1
            else:
                self.cost_usd += event.cost_usd

    def line(self) -> str:
        cost = f"${self.cost_usd:.4f}" + ("+?" if self.unpriced else "")
        return (
            f"iteration {self.iteration} | cells running {self.cells_running}, done "
            f"{self.cells_done} | sub-calls in flight {self.subcalls_in_flight}, done "
            f"{self.subcalls_done} | tokens {self.tokens:,} | cost {cost}"
        )


def _plain_line(event: Event) -> str | None:
    indent = "  " * event.depth
    if isinstance(event, IterationStarted):
        return f"{indent}iteration {event.iteration}"
    if isinstance(event, CellFinished):
        return (
            f"{indent}  cell {event.iteration}.{event.cell_index + 1}: {event.status} "
            f"({event.output_chars:,} chars, {event.duration_s:.2f}s)"
        )
    if isinstance(event, SandboxRestarted):
        return f"{indent}  sandbox restarted: {event.reason}"
    if isinstance(event, RunFinished) and event.depth == 0:
        return f"finished: {event.stop_reason} after {event.iterations} iterations"
    return None


class Progress:
    """Consumes events; a rich live line on a TTY, plain lines on other streams."""

    def __init__(self, stream: TextIO | None = None, *, verbose: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self.counters = Counters()
        self._live: Live | None = None
        if self.stream.isatty() and not verbose:
            # rich only for a terminal: it takes a while to import, and pipes never need it.
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            console = Console(file=self.stream)
            self._live = Live(Text(""), console=console, refresh_per_second=8, transient=True)

    def __call__(self, event: Event) -> None:
        self.counters.update(event)
        if self._live is not None:
            from rich.text import Text

            self._live.update(Text(self.counters.line()))
            return
        line = _plain_line(event)
        if line is not None and (self.verbose or event.depth == 0):
            print(line, file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
