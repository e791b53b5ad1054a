"""``LargeText``: a big text context memory-mapped from its file (worker side, stdlib only).

A 1 GB context loaded as ``str`` costs the worker 1-2 GB of private memory before the
first cell runs. Mapped read-only, it costs page cache shared with the host and only the
pages a cell touches.

It answers the ``str`` methods people use with the results ``str`` gives on the same
text: positions count characters, searches run on the mapped bytes, and methods that
return a whole new text (``lower``, ``replace``, ``split`` ...) build it piece by piece.
It cannot be a ``str`` subclass: CPython keeps a ``str``'s characters inside the object,
so that would copy the file into memory. The differences left are listed in
docs/sandbox.md ("Large text contexts").
"""

from __future__ import annotations

import codecs
import mmap
import operator
import os
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, SupportsIndex

# Character positions ------------------------------------------------------------------
#
# Positions count characters, as on ``str``, while the mapping is addressed in bytes.
# ``CharIndex`` keeps, for blocks of about ``BLOCK`` bytes cut between characters, the
# byte and character offset where each block starts and whether it has one byte per
# character (then both advance together). Converting a position decodes at most one
# block. Invalid UTF-8 counts one character per invalid byte: positions use
# ``surrogateescape``, which keeps that count and round-trips bytes exactly, and text
# shown to the user has U+FFFD for each such byte (``REPLACE_EACH``).

BLOCK = 64 * 1024
REPLACE_EACH = "rlm_engine.replace_each"
_LEAD_LENGTHS = ((0xF0, 4), (0xE0, 3), (0xC0, 2))

Buffer = mmap.mmap | bytes


def _replace_each(exc: UnicodeError) -> tuple[str, int]:
    # One U+FFFD per invalid byte, so shown text has as many characters as positions count.
    if isinstance(exc, UnicodeDecodeError):
        return "\ufffd", exc.start + 1
    raise exc


codecs.register_error(REPLACE_EACH, _replace_each)


def decode(data: Buffer, start: int, end: int) -> str:
    """``data[start:end]`` as text, invalid bytes shown as U+FFFD each."""
    return str(memoryview(data)[start:end], "utf-8", REPLACE_EACH)


def char_boundary(data: Buffer, cut: int, floor: int = 0) -> int:
    """``cut`` moved back, if needed, so that no UTF-8 sequence straddles it."""
    for back in (1, 2, 3):
        position = cut - back
        if position < floor:
            break
        byte = data[position]
        if byte < 0x80:
            break  # ASCII ends any sequence before it
        if byte >= 0xC0:
            length = next(n for lead, n in _LEAD_LENGTHS if byte >= lead)
            return position if position + length > cut and position > floor else cut
    return cut


class CharIndex:
    """Block table of a mapping, built as far as a question needs (``length`` reads all)."""

    def __init__(self, data: Buffer) -> None:
        self._data = data
        self._bytes = [0]
        self._chars = [0]
        self._narrow: list[bool] = []  # one byte per character (ASCII, or bytes invalid)
        self._valid = True
        self._cached: tuple[int, str] = (-1, "")

    def _extend(self) -> bool:
        """Add the next block; ``False`` once the whole mapping is indexed."""
        data, position = self._data, self._bytes[-1]
        if position >= len(data):
            return False
        end = min(position + BLOCK, len(data))
        if end < len(data):
            end = char_boundary(data, end, position)
        piece = data[position:end]
        if piece.isascii():
            count = len(piece)
        else:
            try:
                count = len(piece.decode("utf-8"))
            except UnicodeDecodeError:
                self._valid = False
                count = len(piece.decode("utf-8", "surrogateescape"))
        self._narrow.append(count == len(piece))
        self._bytes.append(end)
        self._chars.append(self._chars[-1] + count)
        return True

    def _complete(self) -> None:
        while self._extend():
            pass

    @property
    def length(self) -> int:
        """Characters in the whole text (indexes all of it)."""
        self._complete()
        return self._chars[-1]

    @property
    def valid_utf8(self) -> bool:
        """Whether the whole file is valid UTF-8 (indexes all of it)."""
        self._complete()
        return self._valid

    @property
    def blocks(self) -> int:
        self._complete()
        return len(self._narrow)

    def block_span(self, block: int) -> tuple[int, int, int]:
        """``(first_char, first_byte, end_byte)`` of a block that exists."""
        while len(self._narrow) <= block and self._extend():
            pass
        return self._chars[block], self._bytes[block], self._bytes[block + 1]

    def _block_text(self, block: int) -> str:
        if self._cached[0] != block:
            start, end = self._bytes[block], self._bytes[block + 1]
            text = str(memoryview(self._data)[start:end], "utf-8", "surrogateescape")
            self._cached = (block, text)
        return self._cached[1]

    def byte_at(self, char: int) -> int:
        """Byte offset of character ``char``; the end for any ``char`` past the text."""
        while self._chars[-1] <= char and self._extend():
            pass
        if char >= self._chars[-1]:
            return self._bytes[-1]
        block = bisect_right(self._chars, char) - 1
        skip = char - self._chars[block]
        if self._narrow[block]:
            return self._bytes[block] + skip
        head = self._block_text(block)[:skip]
        return self._bytes[block] + len(head.encode("utf-8", "surrogateescape"))

    def char_at(self, byte: int) -> int:
        """Character offset of byte ``byte``, which starts a character (or is the end)."""
        while self._bytes[-1] <= byte and self._extend():
            pass
        if byte >= self._bytes[-1]:
            return self._chars[-1]
        block = bisect_right(self._bytes, byte) - 1
        skip = byte - self._bytes[block]
        if self._narrow[block]:
            return self._chars[block] + skip
        start = self._bytes[block]
        head = str(memoryview(self._data)[start:byte], "utf-8", "surrogateescape")
        return self._chars[block] + len(head)


# Regular expressions ------------------------------------------------------------------
#
# ``str`` patterns run window by window. A window is about ``WINDOW`` bytes ending after
# a newline, searched with the character before it (so ``^``, ``\A`` and look-behinds
# see the real text) and ``LOOKAHEAD`` bytes after it (so a match that starts in the
# window may run on, and ``$`` is not fooled by the window's end). Matches are those of
# ``re.finditer`` on the whole text except one that starts in a window and needs more
# than ``LOOKAHEAD`` bytes past it.

WINDOW = 4 * 1024 * 1024
LOOKAHEAD = 256 * 1024


class TextMatch:
    """A match with positions in the whole text (``re.Match`` cannot be shifted)."""

    __slots__ = ("match", "offset")

    def __init__(self, match: re.Match[str], offset: int) -> None:
        self.match = match
        self.offset = offset

    def group(self, *groups: int | str) -> Any:
        return self.match.group(*groups)

    def __getitem__(self, group: int | str) -> str | Any:
        return self.match[group]

    def groups(self, default: Any = None) -> tuple[Any, ...]:
        return self.match.groups(default)

    def groupdict(self, default: Any = None) -> dict[str, Any]:
        return self.match.groupdict(default)

    def start(self, group: int | str = 0) -> int:
        start = self.match.start(group)
        return start if start < 0 else start + self.offset

    def end(self, group: int | str = 0) -> int:
        end = self.match.end(group)
        return end if end < 0 else end + self.offset

    def span(self, group: int | str = 0) -> tuple[int, int]:
        return self.start(group), self.end(group)

    @property
    def re(self) -> re.Pattern[str]:
        return self.match.re

    def __repr__(self) -> str:
        return f"<TextMatch span={self.span()!r} match={self.group()!r}>"


class Window(NamedTuple):
    """A stretch of text to search: ``text[lead:lead + size]`` is the window itself."""

    text: str
    lead: int
    size: int
    first_char: int
    last: bool = False


def _finditer(regex: re.Pattern[str], windows: Iterator[Window]) -> Iterator[TextMatch]:
    """``regex.finditer`` over consecutive windows, as if over their joined text."""
    resume = 0  # where the next search may start, in characters of the whole text
    for window in windows:
        start = max(resume - window.first_char, 0) + window.lead
        # Matches from the lookahead belong to the next window; the last has no next.
        limit = len(window.text) + 1 if window.last else window.lead + window.size
        for match in regex.finditer(window.text, start):
            if match.start() >= limit:
                break
            offset = window.first_char - window.lead
            resume = match.end() + offset
            yield TextMatch(match, offset)
        resume = max(resume, window.first_char + window.size)


def _findall_value(match: TextMatch) -> Any:
    """What ``re.findall`` lists for one match: the match, its one group, or all groups."""
    groups = match.re.groups
    if groups == 0:
        return match.group()
    if groups == 1:
        return match.group(1) or ""
    return match.groups("")


DEFAULT_CHUNK = 1_000_000
# Methods that build a new text work in pieces of this many bytes.
PIECE = 4 * 1024 * 1024
_MAX_SHIFTS = 4096
_STR_METHODS = frozenset(name for name in dir(str) if not name.startswith("_"))
_ASCII_SPACE = re.compile(rb"[ \t\n\r\x0b\x0c\x1c-\x1f]")

Index = SupportsIndex | None


def _needle(sub: object) -> bytes:
    if not isinstance(sub, str):
        raise TypeError(f"must be str, not {type(sub).__name__}")
    return sub.encode("utf-8", "surrogatepass")


class LargeText:
    """Read-only text backed by a memory-mapped file, used like a ``str``.

    ``len``, indexing and slicing, ``in``, ``find``/``rfind``/``index``/``rindex``,
    ``count``, ``startswith``/``endswith``, ``split``/``rsplit``/``splitlines``,
    ``strip``/``lstrip``/``rstrip``, ``replace``, ``lower``/``upper``/``casefold``/
    ``swapcase``/``title``, ``encode`` and iteration (characters) behave as on ``str``.
    ``iter_lines()`` yields ``splitlines()``'s lines one at a time; ``search``,
    ``finditer`` and ``findall`` apply a regular expression; ``grep(regex)`` lists
    matching lines; ``chunks(n)`` yields pieces of about ``n`` bytes cut at line ends;
    ``str(t)`` or ``t.read()`` materialises everything (only if it fits in memory).
    """

    def __init__(self, path: str) -> None:
        self._path = path
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            # mmap of an empty file is an error; an empty bytes object behaves the same.
            self._data: mmap.mmap | bytes = (
                mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
            )
        self._positions: CharIndex | None = None

    def _index(self) -> CharIndex:
        if self._positions is None:
            self._positions = CharIndex(self._data)
        return self._positions

    def __reduce__(self) -> tuple[Any, ...]:
        # The mapping cannot be pickled; the file it maps can be mapped again.
        return (LargeText, (self._path,))

    @property
    def path(self) -> str:
        """Where the file is inside the sandbox."""
        return self._path

    @property
    def nbytes(self) -> int:
        """The size of the UTF-8 file in bytes (``len`` counts characters)."""
        return len(self._data)

    def __len__(self) -> int:
        return self._index().length

    # Positions and slices -------------------------------------------------------------

    def _bounds(self, start: Index, end: Index) -> tuple[int, int]:
        """``start``/``end`` clamped the way ``str.find`` clamps them."""
        size = len(self)
        first = 0 if start is None else operator.index(start)
        last = size if end is None else operator.index(end)
        last = min(last, size) if last >= 0 else max(last + size, 0)
        first = first if first >= 0 else max(first + size, 0)
        return first, last

    def _text(self, start: int, end: int) -> str:
        if end <= start:
            return ""
        index = self._index()
        return decode(self._data, index.byte_at(start), index.byte_at(end))

    def __getitem__(self, key: SupportsIndex | slice) -> str:
        if isinstance(key, slice):
            return self._slice(key)
        position = operator.index(key)
        if position < 0:
            position += len(self)
        text = self._text(position, position + 1) if position >= 0 else ""
        if not text:
            raise IndexError("string index out of range")
        return text

    def _slice(self, key: slice) -> str:
        start, stop = key.start, key.stop
        plain = key.step in (None, 1)
        if plain and (start is None or start >= 0) and stop is not None and stop >= 0:
            # A stretch from the start onwards needs no index of the whole file.
            return self._text(operator.index(start or 0), operator.index(stop))
        first, last, step = key.indices(len(self))
        if step == 1:
            return self._text(first, last)
        span = range(first, last, step)
        if not span:
            return ""
        low, high = min(span[0], span[-1]), max(span[0], span[-1]) + 1
        return self._text(low, high)[span[0] - low :: step]

    def read(self) -> str:
        """The whole text as one ``str``."""
        return decode(self._data, 0, len(self._data))

    def __str__(self) -> str:
        return self.read()

    # Searching -----------------------------------------------------------------------

    def _find(self, sub: str, start: Index, end: Index, *, reverse: bool) -> int:
        needle = _needle(sub)
        first, last = self._bounds(start, end)
        if last - first < len(sub):
            return -1
        if not needle:
            return last if reverse else first
        index = self._index()
        low, high = index.byte_at(first), index.byte_at(last)
        found = (
            self._data.rfind(needle, low, high) if reverse else self._data.find(needle, low, high)
        )
        return -1 if found < 0 else index.char_at(found)

    def find(self, sub: str, start: Index = None, end: Index = None) -> int:
        return self._find(sub, start, end, reverse=False)

    def rfind(self, sub: str, start: Index = None, end: Index = None) -> int:
        return self._find(sub, start, end, reverse=True)

    def index(self, sub: str, start: Index = None, end: Index = None) -> int:
        found = self._find(sub, start, end, reverse=False)
        if found < 0:
            raise ValueError("substring not found")
        return found

    def rindex(self, sub: str, start: Index = None, end: Index = None) -> int:
        found = self._find(sub, start, end, reverse=True)
        if found < 0:
            raise ValueError("substring not found")
        return found

    def __contains__(self, sub: object) -> bool:
        if not isinstance(sub, str):
            name = type(sub).__name__
            raise TypeError(f"'in <string>' requires string as left operand, not {name}")
        return self._data.find(_needle(sub)) >= 0

    def count(self, sub: str, start: Index = None, end: Index = None) -> int:
        """Non-overlapping occurrences of ``sub``, counted on the mapping piece by piece."""
        needle = _needle(sub)
        first, last = self._bounds(start, end)
        if last - first < len(sub):
            return 0
        if not needle:
            return last - first + 1
        index = self._index()
        spans = self._spans(index.byte_at(first), index.byte_at(last), needle)
        return sum(self._data[low:high].count(needle) for low, high in spans)

    def _affix(self, affix: str | tuple[str, ...], start: Index, end: Index, at_end: bool) -> bool:
        first, last = self._bounds(start, end)
        index = self._index()
        for option in affix if isinstance(affix, tuple) else (affix,):
            needle = _needle(option)
            if last - len(option) < first:
                continue
            low, high = index.byte_at(first), index.byte_at(last)
            if at_end:
                low = high - len(needle)
            else:
                high = low + len(needle)
            if low >= index.byte_at(first) and self._data[low:high] == needle:
                return True
        return False

    def startswith(
        self, prefix: str | tuple[str, ...], start: Index = None, end: Index = None
    ) -> bool:
        return self._affix(prefix, start, end, at_end=False)

    def endswith(
        self, suffix: str | tuple[str, ...], start: Index = None, end: Index = None
    ) -> bool:
        return self._affix(suffix, start, end, at_end=True)

    # Pieces --------------------------------------------------------------------------

    def _spans(self, low: int, high: int, needle: bytes = b"") -> Iterator[tuple[int, int]]:
        """Byte ranges covering ``[low, high)``, cut between characters and never inside
        an occurrence of ``needle``, so per-piece results add up to the whole."""
        position = low
        while position < high:
            cut = (
                high
                if high - position <= PIECE
                else self._cut(position + PIECE, position, high, needle)
            )
            yield position, cut
            position = cut

    def _cut(self, cut: int, floor: int, high: int, needle: bytes) -> int:
        cut = char_boundary(self._data, cut, floor)
        size = len(needle)
        if size <= 1:
            return cut
        for _ in range(_MAX_SHIFTS):
            found = self._data.find(needle, max(floor, cut - size + 1), min(high, cut + size - 1))
            if found < 0 or found >= cut:
                return cut
            cut = found + size
        return high  # overlapping occurrences without end: take the rest whole

    def _line_spans(self, size: int | None = None) -> Iterator[tuple[int, int]]:
        """Byte ranges of about ``size`` (``PIECE``) ending just after a ``\\n`` (or at
        the end)."""
        data, position, total = self._data, 0, len(self._data)
        size = size or PIECE
        while position < total:
            end = min(position + size, total)
            if end < total:
                newline = data.rfind(b"\n", position, end)
                if newline < 0:
                    newline = data.find(b"\n", end)
                end = total if newline < 0 else newline + 1
            yield position, end
            position = end

    def _line_pieces(self) -> Iterator[str]:
        for low, high in self._line_spans():
            yield decode(self._data, low, high)

    def _word_spans(self) -> Iterator[tuple[int, int]]:
        """Byte ranges ending just after ASCII whitespace, so no word is cut."""
        data, position, total = self._data, 0, len(self._data)
        while position < total:
            end = min(position + PIECE, total)
            if end < total:
                last = max(data.rfind(space, position, end) for space in (b" ", b"\n", b"\t"))
                found = _ASCII_SPACE.search(data, end) if last < 0 else None
                end = last + 1 if last >= 0 else (found.end() if found else total)
            yield position, end
            position = end

    def __iter__(self) -> Iterator[str]:
        for piece in self._line_pieces():
            yield from piece

    def iter_lines(self, keepends: bool = False) -> Iterator[str]:
        """``splitlines(keepends)``'s lines one at a time, without holding them all."""
        for piece in self._line_pieces():
            yield from piece.splitlines(keepends)

    def lines(self) -> Iterator[str]:
        """Every line without its line ending, in order (``iter_lines()``)."""
        return self.iter_lines()

    def splitlines(self, keepends: bool = False) -> list[str]:
        return list(self.iter_lines(keepends))

    def chunks(self, size: int = DEFAULT_CHUNK) -> Iterator[str]:
        """Consecutive pieces of about ``size`` bytes, cut after a newline when one is
        within the piece, so lines are not split."""
        if size <= 0:
            raise ValueError("chunk size must be positive")
        data, start, total = self._data, 0, len(self._data)
        while start < total:
            end = min(start + size, total)
            if end < total:
                newline = data.rfind(b"\n", start, end)
                end = newline + 1 if newline > start else char_boundary(data, end, start)
            yield decode(data, start, end)
            start = end

    def split(self, sep: str | None = None, maxsplit: SupportsIndex = -1) -> list[str]:
        limit = operator.index(maxsplit)
        if sep is None:
            return self._split_space(limit)
        needle = _needle(sep)
        if not needle:
            raise ValueError("empty separator")
        parts: list[str] = []
        head: list[str] = []  # the part still growing across pieces
        for low, high in self._spans(0, len(self._data), needle):
            text = decode(self._data, low, high)
            if limit == 0:
                head.append(text)
                continue
            pieces = text.split(sep, limit)
            limit = limit - len(pieces) + 1 if limit > 0 else limit
            head.append(pieces[0])
            if len(pieces) > 1:
                parts.append("".join(head))
                parts.extend(pieces[1:-1])
                head = [pieces[-1]]
        parts.append("".join(head))
        return parts

    def _split_space(self, limit: int) -> list[str]:
        parts: list[str] = []
        rest: list[str] = []
        rest_is_word = False  # the rest begins inside a word: keep its start as is
        for low, high in self._word_spans():
            text = decode(self._data, low, high)
            if limit == 0:
                rest.append(text)
            elif limit < 0:
                parts.extend(text.split())
            else:
                pieces = text.split(None, limit)
                if len(pieces) > limit:
                    parts.extend(pieces[:limit])
                    rest, rest_is_word, limit = [pieces[limit]], True, 0
                else:
                    parts.extend(pieces)
                    limit -= len(pieces)
        if limit == 0:
            tail = "".join(rest)
            tail = tail if rest_is_word else tail.lstrip()
            if tail:
                parts.append(tail)
        return parts

    def rsplit(self, sep: str | None = None, maxsplit: SupportsIndex = -1) -> list[str]:
        """As ``str.rsplit``; with a separator or a limit it loads the whole text."""
        if sep is None and operator.index(maxsplit) < 0:
            return self.split()
        return self.read().rsplit(sep, maxsplit)

    # Whole new texts -----------------------------------------------------------------

    def replace(self, old: str, new: str, count: SupportsIndex = -1) -> str:
        needle = _needle(old)
        _needle(new)
        limit = operator.index(count)
        if not needle:
            return self.read().replace(old, new, limit)
        out: list[str] = []
        for low, high in self._spans(0, len(self._data), needle):
            text = decode(self._data, low, high)
            if limit == 0:
                out.append(text)
                continue
            out.append(text.replace(old, new, limit))
            limit = max(0, limit - text.count(old)) if limit > 0 else limit
        return "".join(out)

    def _mapped(self, method: Callable[[str], str]) -> str:
        # Pieces end after a newline, which no case rule looks across.
        return "".join(method(piece) for piece in self._line_pieces())

    def lower(self) -> str:
        return self._mapped(str.lower)

    def upper(self) -> str:
        return self._mapped(str.upper)

    def casefold(self) -> str:
        return self._mapped(str.casefold)

    def swapcase(self) -> str:
        return self._mapped(str.swapcase)

    def title(self) -> str:
        return self._mapped(str.title)

    def _kept_start(self, chars: str | None) -> int:
        index = self._index()
        for block in range(index.blocks):
            first, low, high = index.block_span(block)
            text = decode(self._data, low, high)
            kept = text.lstrip(chars)
            if kept:
                return first + len(text) - len(kept)
        return index.length

    def _kept_end(self, chars: str | None) -> int:
        index = self._index()
        for block in reversed(range(index.blocks)):
            first, low, high = index.block_span(block)
            kept = decode(self._data, low, high).rstrip(chars)
            if kept:
                return first + len(kept)
        return 0

    def strip(self, chars: str | None = None) -> str:
        start = self._kept_start(chars)
        return self._text(start, self._kept_end(chars)) if start < len(self) else ""

    def lstrip(self, chars: str | None = None) -> str:
        return self._text(self._kept_start(chars), len(self))

    def rstrip(self, chars: str | None = None) -> str:
        return self._text(0, self._kept_end(chars))

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        """As ``str.encode``; the UTF-8 of a valid file is its bytes, copied once."""
        if codecs.lookup(encoding).name == "utf-8" and self._index().valid_utf8:
            return bytes(self._data)
        return self.read().encode(encoding, errors)

    # Regular expressions -------------------------------------------------------------

    def _windows(self) -> Iterator[Window]:
        data, first = self._data, 0
        if not data:
            yield Window("", 0, 0, 0, last=True)
        for low, high in self._line_spans(WINDOW):
            body = decode(data, low, high)
            ahead = char_boundary(data, min(high + LOOKAHEAD, len(data)), high)
            lead = "\n" if low else ""  # every window but the first follows a newline
            text = lead + body + decode(data, high, ahead)
            yield Window(text, len(lead), len(body), first, last=high == len(data))
            first += len(body)

    def finditer(self, pattern: str | re.Pattern[str], flags: int = 0) -> Iterator[TextMatch]:
        """``re.finditer(pattern, text)`` with positions in this text (see
        ``WINDOW`` for the one limit: a match may run at most 256 KiB past
        the 4 MiB window it starts in)."""
        return _finditer(re.compile(pattern, flags), self._windows())

    def search(self, pattern: str | re.Pattern[str], flags: int = 0) -> TextMatch | None:
        """The first match of ``pattern``, as ``re.search`` finds it, or ``None``."""
        return next(self.finditer(pattern, flags), None)

    def findall(self, pattern: str | re.Pattern[str], flags: int = 0) -> list[Any]:
        """What ``re.findall(pattern, text)`` returns."""
        return [_findall_value(match) for match in self.finditer(pattern, flags)]

    def grep(self, pattern: str, *, flags: int = 0, max_hits: int = 1000) -> list[tuple[int, str]]:
        """``(offset_of_line, line)`` for lines (split at ``\\n``, a trailing ``\\r``
        dropped) matching the regular expression ``pattern``; offsets are characters."""
        regex = re.compile(pattern, flags)
        hits: list[tuple[int, str]] = []
        first = 0
        for text in self._line_pieces():
            position = 0
            while len(hits) < max_hits and position < len(text):
                match = regex.search(text, position)
                if match is None:
                    break
                line_start = text.rfind("\n", 0, match.start()) + 1
                line_end = text.find("\n", match.start())
                line_end = len(text) if line_end < 0 else line_end
                hits.append((first + line_start, text[line_start:line_end].removesuffix("\r")))
                position = line_end + 1
            if len(hits) >= max_hits:
                break
            first += len(text)
        return hits

    # Everything else -----------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # The rest of str's methods (partition, isdigit, format, ...) work on a copy.
        if name in _STR_METHODS:
            return getattr(self.read(), name)
        raise AttributeError(f"'LargeText' object has no attribute {name!r}")

    def __repr__(self) -> str:
        head = self[:80].replace("\n", "\\n")
        return f"<LargeText of {self.nbytes:,} bytes (memory-mapped) {self._path!r}: {head!r}...>"
