"""``LargeText``: a big text context memory-mapped from its file (worker side, stdlib only).

A 1 GB context loaded as ``str`` costs the worker 1-2 GB of private memory before the
first cell runs. Mapped read-only, it costs page cache shared with the host and only the
pages a cell touches. Positions are byte offsets into the UTF-8 file; a slice that cuts
a multi-byte character shows U+FFFD at the cut.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Iterator

DEFAULT_CHUNK = 1_000_000


class LargeText:
    """Read-only text backed by a memory-mapped file.

    ``len(t)`` is the size in bytes; ``t[a:b]`` returns ``str``; ``find``/``count``
    take ``str``; ``grep(regex)`` yields matching lines; ``chunks(n)`` splits into
    pieces of about ``n`` bytes at line ends; ``lines()`` iterates lines; ``str(t)`` or
    ``t.read()`` materialises everything (only do that if it fits in memory).
    """

    def __init__(self, path: str) -> None:
        self._path = path
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            # mmap of an empty file is an error; an empty bytes object behaves the same.
            self._data: mmap.mmap | bytes = (
                mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
            )

    @property
    def path(self) -> str:
        """Where the file is inside the sandbox."""
        return self._path

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, key: int | slice) -> str:
        if isinstance(key, int):
            key = slice(key, key + 1 if key != -1 else None)
        return bytes(self._data[key]).decode("utf-8", "replace")

    def read(self) -> str:
        """The whole text as one ``str``."""
        return self[:]

    def __str__(self) -> str:
        return self.read()

    def find(self, sub: str, start: int = 0, end: int | None = None) -> int:
        """Byte offset of ``sub`` or -1."""
        stop = len(self._data) if end is None else end
        return self._data.find(sub.encode("utf-8"), start, stop)

    def count(self, sub: str) -> int:
        """Occurrences of ``sub`` (non-overlapping), scanned without copying the text."""
        needle = sub.encode("utf-8")
        if not needle:
            return len(self._data) + 1
        total, position = 0, self._data.find(needle)
        while position >= 0:
            total += 1
            position = self._data.find(needle, position + len(needle))
        return total

    def __contains__(self, sub: object) -> bool:
        return isinstance(sub, str) and self.find(sub) >= 0

    def lines(self) -> Iterator[str]:
        """Every line without its line ending, in order."""
        start, size = 0, len(self._data)
        while start < size:
            end = self._data.find(b"\n", start)
            end = size if end < 0 else end
            yield bytes(self._data[start:end]).decode("utf-8", "replace").removesuffix("\r")
            start = end + 1

    def chunks(self, size: int = DEFAULT_CHUNK) -> Iterator[str]:
        """Consecutive pieces of about ``size`` bytes, cut after a newline when one is
        within the piece, so lines are not split."""
        if size <= 0:
            raise ValueError("chunk size must be positive")
        start, total = 0, len(self._data)
        while start < total:
            end = min(start + size, total)
            if end < total:
                newline = self._data.rfind(b"\n", start, end)
                end = newline + 1 if newline > start else end
            yield bytes(self._data[start:end]).decode("utf-8", "replace")
            start = end

    def grep(self, pattern: str, *, flags: int = 0, max_hits: int = 1000) -> list[tuple[int, str]]:
        """``(byte_offset_of_line, line)`` for lines matching the regular expression
        ``pattern``; the search runs over the mapped bytes, not a copy."""
        regex = re.compile(pattern.encode("utf-8"), flags)
        hits: list[tuple[int, str]] = []
        position = 0
        while len(hits) < max_hits:
            match = regex.search(self._data, position)
            if match is None:
                break
            line_start = self._data.rfind(b"\n", 0, match.start()) + 1
            line_end = self._data.find(b"\n", match.start())
            line_end = len(self._data) if line_end < 0 else line_end
            line = bytes(self._data[line_start:line_end]).decode("utf-8", "replace")
            hits.append((line_start, line.removesuffix("\r")))
            position = line_end + 1
        return hits

    def __repr__(self) -> str:
        head = self[:80].replace("\n", "\\n")
        return f"<LargeText of {len(self):,} bytes (memory-mapped) {self._path!r}: {head!r}...>"
