"""Running one cell in the worker: output capture, soft interrupts, tracebacks (stdlib only)."""

from __future__ import annotations

import ast
import codecs
import io
import linecache
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    # Imported when a cell fails, not at the worker's start (it pulls in a few modules).
    import traceback

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
MAX_ERROR_CHARS = 20_000


HARD_OUTPUT_EXIT_CODE = 71
"""Exit status of a worker whose cell passed the hard output cap."""


def hard_output_exit() -> None:
    """Kill this worker and its process group with the hard-cap exit status."""
    try:
        os.write(2, b"\n[rlm: output passed the hard cap; the sandbox was stopped]\n")
    finally:
        os._exit(HARD_OUTPUT_EXIT_CODE)


class CappedOutput:
    """Stands in for ``sys.stdout`` and ``sys.stderr`` during a cell.

    Keeps the first ``cap`` characters and counts the rest, so a cell printing 100 MB
    costs little memory and the host learns how much was dropped. One instance serves
    every cell: a logging handler created in one cell keeps a reference to the stream it
    saw, and its output must still reach later cells.
    """

    encoding = "utf-8"
    errors = "replace"
    closed = False

    def __init__(self, cap: int, hard_cap: int = 0) -> None:
        self._cap = cap
        self._hard_cap = hard_cap
        self._parts: list[str] = []
        self._size = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self.buffer = _BytesSink(self)

    def write(self, text: object) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            room = self._cap - self._size
            if len(text) <= room:
                self._parts.append(text)
                self._size += len(text)
            else:
                if room > 0:
                    self._parts.append(text[:room])
                    self._size += room
                self.dropped += len(text) - max(room, 0)
                if self._hard_cap and self._size + self.dropped > self._hard_cap:
                    # A cell printing without bound: stop the whole worker, the host
                    # reports the exit code as a typed kill.
                    hard_output_exit()
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def take(self) -> tuple[str, int]:
        """Return and forget the text so far and how many characters were dropped."""
        with self._lock:
            text, dropped = "".join(self._parts), self.dropped
            self._parts, self._size, self.dropped = [], 0, 0
        return text, dropped

    def flush(self) -> None:
        """Nothing to flush: the text is kept in memory."""

    def isatty(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        """Ignored: the stream outlives any cell that tries to close it."""

    def fileno(self) -> int:
        raise io.UnsupportedOperation("captured cell output has no file descriptor")


class _BytesSink:
    """``sys.stdout.buffer`` for code that writes bytes."""

    def __init__(self, target: CappedOutput) -> None:
        self._target = target
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def write(self, data: bytes) -> int:
        self._target.write(self._decoder.decode(bytes(data)))
        return len(data)

    def flush(self) -> None:
        """Nothing to flush."""


class SoftInterrupt:
    """Turns SIGINT into ``KeyboardInterrupt`` only while a cell runs, at most once per
    cell; between cells SIGINT is ignored so it can never break the worker itself."""

    def __init__(self) -> None:
        self._armed = False
        self.fired = False

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._on_sigint)

    def arm(self) -> None:
        self.fired = False
        self._armed = True

    def disarm(self) -> None:
        self._armed = False

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self._armed:
            # Disarm first so the interrupt cannot fire again inside the worker's own
            # clean-up code after the cell.
            self._armed = False
            self.fired = True
            raise KeyboardInterrupt


def _compile(code: str, filename: str) -> tuple[CodeType, CodeType | None]:
    """Compile the cell; a trailing bare expression is compiled apart so its value can be
    shown, as in a notebook. ``dont_inherit`` keeps this module's future imports out."""
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    tree = ast.parse(code, filename, "exec")
    last: CodeType | None = None
    final_statement = tree.body[-1] if tree.body else None
    if isinstance(final_statement, ast.Expr):
        tree.body.pop()
        expression = ast.Expression(final_statement.value)
        last = compile(expression, filename, "eval", dont_inherit=True)
    return compile(tree, filename, "exec", dont_inherit=True), last


def _strip_worker_frames(exc: traceback.TracebackException) -> None:
    import traceback

    seen: set[int] = set()
    todo: list[traceback.TracebackException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        kept = [frame for frame in item.stack if not frame.filename.startswith(_PACKAGE_DIR)]
        item.stack = traceback.StackSummary.from_list(kept)
        todo.extend([item.__cause__, item.__context__])


def format_error(exc: BaseException) -> str:
    """The traceback the cell's author needs: their frames, not the worker's."""
    import traceback

    summary = traceback.TracebackException.from_exception(exc)
    _strip_worker_frames(summary)
    text = "".join(summary.format())
    if len(text) > MAX_ERROR_CHARS:
        half = MAX_ERROR_CHARS // 2
        text = f"{text[:half]}\n... [{len(text) - MAX_ERROR_CHARS:,} chars cut] ...\n{text[-half:]}"
    return text


def run_cell(
    code: str,
    namespace: dict[str, Any],
    filename: str,
    interrupt: SoftInterrupt,
    show: Callable[[Any], None],
) -> str | None:
    """Execute ``code`` in ``namespace``; return the formatted error, or None on success.

    Must be called from the main thread (so SIGINT interrupts it). ``show`` receives the
    value of a trailing expression.
    """
    try:
        body, last = _compile(code, filename)
    except Exception as exc:  # SyntaxError, and ValueError/RecursionError for odd sources
        import traceback

        return "".join(traceback.format_exception_only(type(exc), exc))
    try:
        try:
            interrupt.arm()
            exec(body, namespace)
            if last is not None:
                show(eval(last, namespace))
        finally:
            interrupt.disarm()
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are cell results too
        return format_error(exc)
    return None


def capture(output: CappedOutput) -> None:
    """Redirect ``sys.stdout``/``sys.stderr`` into the capped buffer."""
    # Duck-typed: CappedOutput has every method print() and common libraries use.
    sys.stdout = sys.stderr = cast(TextIO, output)


def restore(stdout: Any, stderr: Any) -> None:
    """Put the real streams back after a cell."""
    sys.stdout = stdout
    sys.stderr = stderr
