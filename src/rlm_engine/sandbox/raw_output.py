"""Host-side buffer for what the worker writes straight to fd 1/2 (``os.system``, C code,
background threads between cells).

The host drains the pipe continuously so the worker never blocks on a full pipe; the text
kept is bounded and what is dropped is counted.
"""

from __future__ import annotations

import codecs


class RawOutput:
    """Decodes bytes as UTF-8 (invalid bytes become U+FFFD) and keeps at most ``cap`` chars."""

    def __init__(self, cap_chars: int) -> None:
        self._cap = cap_chars
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0

    def feed(self, data: bytes) -> None:
        """Add bytes read from the pipe."""
        self._add(self._decoder.decode(data))

    def finish(self) -> None:
        """The pipe ended: flush a trailing incomplete UTF-8 sequence."""
        self._add(self._decoder.decode(b"", final=True))

    def _add(self, text: str) -> None:
        room = self._cap - self._size
        if len(text) <= room:
            if text:
                self._parts.append(text)
                self._size += len(text)
            return
        if room > 0:
            self._parts.append(text[:room])
            self._size += room
        self._dropped += len(text) - max(room, 0)

    def take(self) -> tuple[str, int]:
        """Return and forget the text so far and how many characters were dropped."""
        text, dropped = "".join(self._parts), self._dropped
        self._parts, self._size, self._dropped = [], 0, 0
        return text, dropped
