"""The contexts of ``rlm ask``, checked before a run starts: on the user's own files, so
every message names the path they typed, and before the store records a run or a model
is called.

Cheap on a large context: binary files are told by a prefix, text is decoded in
streaming chunks (UTF-8's decoder runs in C), and JSON is parsed only for ``.json`` files
up to `JSON_CHECK_BYTES` (above that the run's loader parses it, once).
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from rlm_engine.errors import ConfigurationError
from rlm_engine.service.contexts import SNIFF_BYTES, ReadOptions, is_binary
from rlm_engine.service.spec import BinaryMode

CHUNK_BYTES = 1 << 20
JSON_CHECK_BYTES = 256 * 1024 * 1024
"""Larger ``.json`` contexts are not parsed here: the run's loader parses them (a second
parse of a huge file would double the wait and the memory)."""
STDIN = "-"
STDIN_NAME = "<stdin>"
# Version-control internals are skipped when a directory is staged; skip them here too.
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn"})


class ContextInputError(ConfigurationError):
    """A context cannot be used as given; the message names the path, ``hint`` the remedy."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message, hint=hint)


@dataclass(slots=True)
class Findings:
    """What the checks found in the contexts, besides errors."""

    warnings: list[str] = field(default_factory=list[str])
    binary: list[str] = field(default_factory=list[str])
    """User paths of binary files, loaded as bytes (``--binary bytes``)."""


@dataclass(slots=True)
class Decoded:
    replaced: int = 0
    first_bad: int | None = None
    base: int = 0
    """File offset of the bytes given to the decoder's current call."""


_TALLY: ContextVar[Decoded | None] = ContextVar("rlm_inputs_tally", default=None)


def _count_replaced(exc: UnicodeError) -> tuple[str, int]:
    """A ``replace`` error handler that also counts, into `_TALLY`, the bytes it replaces."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    tally = _TALLY.get()
    if tally is not None:
        tally.replaced += exc.end - exc.start
        if tally.first_bad is None:
            tally.first_bad = tally.base + exc.start
    return "\ufffd", exc.end


_ERRORS = "rlm-count-replaced"
codecs.register_error(_ERRORS, _count_replaced)


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK_BYTES):
        yield chunk


def _decode(path: Path, encoding: str, keep: bool) -> tuple[Decoded, str | None]:
    """Decode ``path`` in chunks, counting the bytes that are invalid in ``encoding``;
    with ``keep``, return the text too."""
    tally = Decoded()
    parts: list[str] = []
    decoder = codecs.getincrementaldecoder(encoding)(errors=_ERRORS)
    token = _TALLY.set(tally)
    try:
        offset = 0
        with path.open("rb") as handle:
            for chunk in _chunks(handle):
                # The decoder holds back the bytes of a character cut by the chunk's end;
                # they come first in what it decodes next.
                pending = decoder.getstate()[0]
                tally.base = offset - len(pending)
                text = decoder.decode(chunk)
                if keep:
                    parts.append(text)
                offset += len(chunk)
            pending = decoder.getstate()[0]
            tally.base = offset - len(pending)
            tail = decoder.decode(b"", final=True)
    finally:
        _TALLY.reset(token)
    return tally, "".join([*parts, tail]) if keep else None


def _check_json(user: str, text: str) -> None:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContextInputError(
            f"context file {user} is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}",
            "fix the file, or give it a name that does not end in .json to read it as text",
        ) from None


def _check_file(path: Path, user: str, options: ReadOptions, found: Findings, alone: bool) -> None:
    """One file: ``alone`` when it is a context by itself (not one file of a directory)."""
    size = path.stat().st_size
    if size == 0:
        if alone:
            raise ContextInputError(
                f"context file {user} is empty",
                "give a file with content, or leave the --context out to ask without one",
            )
        return  # an empty file in a directory is just an empty file of the corpus
    with path.open("rb") as handle:
        prefix = handle.read(SNIFF_BYTES)
    if is_binary(prefix, options.encoding):
        found.binary.append(user)
        return
    encoding = options.encoding or "utf-8"
    is_json = alone and path.suffix.lower() == ".json" and size <= JSON_CHECK_BYTES
    decoded, text = _decode(path, encoding, keep=is_json)
    if decoded.replaced:
        remedy = (
            "pass --encoding NAME (e.g. --encoding latin-1) to decode it as another encoding"
            if options.encoding is None
            else "pass the file's own encoding with --encoding"
        )
        found.warnings.append(
            f"context file {user} is not valid {encoding}: {decoded.replaced:,} bytes "
            f"(the first at byte {decoded.first_bad:,}) were replaced with U+FFFD; "
            f"it is read as {encoding}; {remedy}"
        )
    if text is not None:
        _check_json(user, text)


def _files_under(root: Path) -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(name for name in dirs if name not in SKIPPED_DIRS)
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_file():
                yield path


def _check_path(raw: str, options: ReadOptions, found: Findings, user: str) -> None:
    path = Path(raw).expanduser()
    if not path.exists():
        raise ContextInputError(
            f"context path {user} does not exist", "check the path given to --context"
        )
    try:
        _check_readable(path, raw, user, options, found)
    except OSError as exc:
        raise ContextInputError(
            f"cannot read context {user}: {exc.strerror or exc}",
            "check that the file exists and that you may read it",
        ) from None


def _check_readable(path: Path, raw: str, user: str, options: ReadOptions, found: Findings) -> None:
    from rlm_engine.integrations.table_context import is_table_path, resolve_tables

    if is_table_path(path):  # Parquet is binary, yet no --binary is needed: it is a table
        resolve_tables([path])  # raises a ConfigurationError naming the file
        return
    if path.is_file():
        _check_file(path, user, options, found, alone=True)
        return
    if not path.is_dir():
        raise ContextInputError(
            f"context path {raw} is neither a file nor a directory",
            "give a regular file or a directory to --context (or '-' to read stdin)",
        )
    count = 0
    for file in _files_under(path):
        count += 1
        _check_file(file, str(Path(raw) / file.relative_to(path)), options, found, alone=False)
    if count == 0:
        raise ContextInputError(
            f"context directory {raw} holds no files",
            "give a directory with files, or leave the --context out to ask without one",
        )


def check_contexts(
    raw: Sequence[str], options: ReadOptions, names: Mapping[str, str] | None = None
) -> Findings:
    """Check every context path as the user gave it (or as ``names`` calls it); raise
    `ContextInputError` for the first one that cannot be used, and return the warnings
    for the others."""
    found = Findings()
    if len(raw) > 1:
        for item in raw:
            if Path(item).expanduser().is_dir():
                raise ContextInputError(
                    f"context directory {item} is given with other contexts; a directory "
                    "must be the only --context",
                    "give the directory alone, or its files one --context each",
                )
    for item in raw:
        _check_path(item, options, found, (names or {}).get(item, item))
    if found.binary and options.binary == "refuse":
        shown = ", ".join(found.binary[:5]) + (", ..." if len(found.binary) > 5 else "")
        what = (
            f"context file {shown} looks"
            if len(found.binary) == 1
            else f"{len(found.binary)} context files look"
        )
        raise ContextInputError(
            f"{what} binary, not text{'' if len(found.binary) == 1 else ': ' + shown}",
            "pass --binary bytes to load binary files as bytes, or leave them out",
        )
    for user in found.binary:
        where = (
            "bytes"
            if user in raw or user in (names or {}).values()
            else ("bytes by corpus.read_bytes")
        )
        found.warnings.append(f"context file {user} is binary; it is read as {where}")
    return found


def read_stdin(home: Path, stream: BinaryIO | None = None) -> Path:
    """Keep what stdin holds as a file under ``home`` and return its path.

    The file is named by its content, so the run pins it like any other file and a
    resume reads the same bytes (from the pin, or from this file while it is kept)."""
    source = stream if stream is not None else sys.stdin.buffer
    folder = home / "stdin"
    digest = hashlib.sha256()
    partial = folder / f".partial-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as out:
            for chunk in _chunks(source):
                digest.update(chunk)
                out.write(chunk)
        target = folder / f"{digest.hexdigest()[:32]}.txt"
        partial.replace(target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise ContextInputError(
            f"cannot keep the context read from stdin in {folder}: {exc.strerror or exc}",
            "make RLM_HOME writable (or point it elsewhere), or pass the context as a file",
        ) from None
    return target


def prepare_contexts(
    raw: Sequence[str], options: ReadOptions, home: Path
) -> tuple[list[str], Findings]:
    """The context paths with ``-`` replaced by the file stdin was read into, checked."""
    if list(raw).count(STDIN) > 1:
        raise ContextInputError(
            "--context - is given more than once", "read stdin once: give --context - once"
        )
    paths = [str(read_stdin(home)) if item == STDIN else item for item in raw]
    names: dict[str, str] = {}
    if STDIN in raw:
        kept = paths[list(raw).index(STDIN)]
        if os.path.getsize(kept) == 0:
            raise ContextInputError(
                "the context read from stdin (--context -) is empty",
                "pipe the context in (e.g. `cat notes.txt | rlm ask ... --context -`)",
            )
        names[kept] = STDIN_NAME
    return paths, check_contexts(paths, options, names)


def checked_contexts(
    raw: Sequence[str], binary: BinaryMode, encoding: str | None, home: Path
) -> list[str]:
    """``rlm ask``'s contexts, ``-`` read from stdin, checked; warnings go to stderr."""
    paths, found = prepare_contexts(raw, ReadOptions(binary=binary, encoding=encoding), home)
    for warning in found.warnings:
        print(f"rlm: warning: {warning}", file=sys.stderr)
    return paths
