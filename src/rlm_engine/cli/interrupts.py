"""Ctrl-C and SIGTERM during a CLI run: stop it promptly, keep it resumable, say how.

The first signal cancels the run's task: its ``finally`` blocks close the sandbox and the
model clients, flush the journal and the events, and the caller records the run as
interrupted. A second signal while that happens ends the process at once: the journal is
written ahead of every step, so it is consistent whatever moment the process stops, and
the run (still "running", its process gone) shows as interrupted to the next command.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable
from typing import TypeVar

from rlm_engine.cli.outcome import EXIT_INTERRUPTED

T = TypeVar("T")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """Signal handling for one run of the CLI; ``signal_name`` says what stopped it."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.signal_name: str | None = None

    def detail(self) -> str:
        name = self.signal_name or "SIGINT"
        how = "Ctrl-C (SIGINT)" if name == "SIGINT" else name
        return f"stopped by {how}; resume it with: rlm runs resume {self.run_id}"

    def noticed(self, name: str = "SIGINT") -> None:
        """Note a signal that arrived while no handler of ours was installed."""
        self.signal_name = self.signal_name or name

    async def guard(self, work: Awaitable[T]) -> T:
        """Await ``work`` (in the current task) with SIGINT and SIGTERM handled."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        installed: list[signal.Signals] = []
        if task is not None:
            for sig in SIGNALS:
                try:
                    loop.add_signal_handler(sig, self._on_signal, sig, task)
                except (ValueError, RuntimeError, NotImplementedError):
                    continue  # not the main thread, or a platform without them
                installed.append(sig)
        try:
            return await work
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals, task: asyncio.Task[object]) -> None:
        if self.signal_name is not None:
            self._exit_now()
        self.signal_name = sig.name
        again = " (press Ctrl-C again to quit at once)" if sig == signal.SIGINT else ""
        print(f"rlm: stopping run {self.run_id} and saving it{again}", file=sys.stderr, flush=True)
        task.cancel()

    def _exit_now(self) -> None:
        resume = f"rlm runs resume {self.run_id}"
        show_cursor = "\x1b[?25h" if os.isatty(2) else ""  # a live line hides it
        message = (
            f"{show_cursor}\nrlm: interrupted: run {self.run_id} is saved; "
            f"continue it with: {resume}\n"
        )
        os.write(2, message.encode())
        os._exit(EXIT_INTERRUPTED)  # pyright: ignore[reportPrivateUsage]
