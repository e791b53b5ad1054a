"""A run's context as the run reads it: the files its spec names (as they are now), or
the copies pinned in the store when it was recorded (as they were)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rlm_engine.errors import ContextError
from rlm_engine.service.spec import BinaryMode, RunSpec
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import Run

if TYPE_CHECKING:
    from rlm_engine.sandbox.base import ContextValue

SNIFF_BYTES = 8192
# Encodings in which NUL bytes are ordinary text.
_WIDE = ("utf-16", "utf-32")


@dataclass(frozen=True, slots=True)
class ReadOptions:
    binary: BinaryMode = "refuse"
    encoding: str | None = None
    """None: UTF-8, invalid bytes replaced with a warning."""


def is_binary(prefix: bytes, encoding: str | None) -> bool:
    """Whether a file starting with ``prefix`` is binary rather than text."""
    if encoding is not None and encoding.startswith(_WIDE):
        return False
    if b"\0" in prefix:
        return True
    # Text has few control bytes besides tab, newlines, form feed and escape.
    controls = sum(1 for b in prefix if b < 32 and b not in b"\t\n\r\f\x1b")
    return bool(prefix) and controls / len(prefix) > 0.1


def read_options(spec: RunSpec) -> ReadOptions:
    """How a run's spec says its context files are read."""
    return ReadOptions(binary=spec.binary, encoding=spec.encoding)


def context_value(paths: Sequence[Path], options: ReadOptions) -> ContextValue:
    """The value handed to the run for ``paths``: each a `ContextFile` carrying how to
    read it (its encoding; bytes for a binary file under ``--binary bytes``)."""
    from rlm_engine.sandbox.context import ContextFile

    if not paths:
        return None
    # UTF-8 is the loader's default; naming it would keep a large text from being mapped.
    encoding = None if options.encoding == "utf-8" else options.encoding
    values: list[Path] = []
    for path in paths:
        as_bytes = False
        if options.binary == "bytes" and path.is_file():
            with path.open("rb") as handle:
                as_bytes = is_binary(handle.read(SNIFF_BYTES), options.encoding)
        values.append(ContextFile.of(path, encoding=encoding, as_bytes=as_bytes))
    return values[0] if len(values) == 1 else values


def context_paths(raw: Sequence[str]) -> tuple[str, ...]:
    """Absolute paths of the given contexts; a missing one is a clear error."""
    paths: list[str] = []
    for item in raw:
        path = Path(item).expanduser()
        if not path.exists():
            raise ContextError(f"context path {item!r} does not exist")
        paths.append(str(path.resolve()))
    return tuple(paths)


def context_of(spec: RunSpec) -> ContextValue:
    """The context the spec names (the paths, as they are now), read as it says."""
    paths = [Path(p) for p in spec.context]
    for path in paths:
        if not path.exists():
            raise ContextError(f"the run's context {str(path)!r} is gone; restore it to go on")
    return context_value(paths, read_options(spec))


@contextlib.contextmanager
def context_scratch() -> Generator[Path]:
    """Where one execution rebuilds pinned contexts; removed when it ends."""
    with tempfile.TemporaryDirectory(prefix="rlm-context-") as name:
        yield Path(name)


def pinned_context(store: Store, key: str, spec: RunSpec, scratch: Path) -> ContextValue:
    """The context pinned in the store under ``key`` (rebuilt under ``scratch``)."""
    from rlm_engine.store.pinned_context import restore_context

    return context_value(restore_context(store, key, scratch), read_options(spec))


def run_context(store: Store, run: Run, scratch: Path) -> ContextValue:
    """A recorded run's context as it was: pinned copies where the files changed since
    (rebuilt under ``scratch``); runs recorded before contexts were pinned use the paths."""
    from rlm_engine.store.pinned_context import pinned_entries

    spec = RunSpec.from_json(run.settings)
    if run.context_hash is None:
        return context_of(spec)
    if pinned_entries(store, run.context_hash) is None:
        raise ContextError(
            f"run {run.run_id} stopped before its context was kept in the store, so the "
            "bytes it saw cannot be restored exactly; ask the question again"
        )
    return pinned_context(store, run.context_hash, spec, scratch)
