"""Progress of ``rlm bench run``: a rich bar on a terminal, one line per task otherwise."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rlm_engine.bench.results import TaskResult


class BenchProgress:
    """Called with each finished ``TaskResult``."""

    def __init__(self, total: int, done: int, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total = total
        self.count = done
        self.score = 0.0
        self.finished = 0
        self._bar: Progress | None = None
        self._task_id = None
        if self.stream.isatty():
            self._bar = Progress(
                TextColumn("[bold]bench"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
            )
            self._task_id = self._bar.add_task("", total=total, completed=done)

    def __call__(self, result: TaskResult) -> None:
        self.count += 1
        self.finished += 1
        self.score += result.score
        mean = self.score / self.finished
        if self._bar is not None and self._task_id is not None:
            self._bar.update(
                self._task_id, advance=1, description=f"mean score {mean:.3f} | {result.task_id}"
            )
            return
        print(
            f"[{self.count}/{self.total}] {result.task_id} {result.method}: "
            f"score {result.score:.3f} ({result.status}, {result.duration_s:.1f}s)",
            file=self.stream,
            flush=True,
        )

    def __enter__(self) -> BenchProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
