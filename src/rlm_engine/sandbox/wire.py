"""Frames exchanged between the host and the REPL worker (stdlib only, used on both sides).

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON whose top
level is an object. Frames travel on dedicated pipes, never on the worker's stdout/stderr,
so nothing a cell prints can be mistaken for a message.
"""

from __future__ import annotations

import json
import os
from typing import Any, cast

HEADER_BYTES = 4
MAX_FRAME_BYTES = 256 * 1024 * 1024
"""Largest payload either side accepts. Large enough for a capped cell output or a big
sub-call prompt; small enough that a hostile worker cannot make the host buffer gigabytes."""


class WireError(Exception):
    """A frame could not be encoded or decoded; the stream can no longer be trusted."""


def encode(message: dict[str, Any]) -> bytes:
    """Serialise ``message`` into one frame.

    Raises ``TypeError``/``ValueError`` if the message is not JSON-serialisable, and
    ``WireError`` if it exceeds ``MAX_FRAME_BYTES``.
    """
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    try:
        payload = text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (e.g. from surrogateescape decoding) cannot be UTF-8; escaping
        # everything keeps them intact through json.loads on the other side.
        payload = json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    if len(payload) > MAX_FRAME_BYTES:
        raise WireError(f"frame of {len(payload)} bytes exceeds the {MAX_FRAME_BYTES} limit")
    return len(payload).to_bytes(HEADER_BYTES, "big") + payload


def decode_payload(payload: bytes) -> dict[str, Any]:
    """Parse one frame body; anything but a JSON object is a ``WireError``."""
    try:
        message = json.loads(payload)
    except ValueError as exc:  # includes UnicodeDecodeError and JSONDecodeError
        raise WireError(f"frame is not valid UTF-8 JSON: {exc}") from None
    except RecursionError:
        # Deep nesting exhausts the parser's stack; the frame is hostile, not a crash.
        raise WireError("frame is nested too deeply to decode") from None
    if not isinstance(message, dict):
        raise WireError("frame is not a JSON object")
    return cast(dict[str, Any], message)  # JSON object keys are always str


class FrameDecoder:
    """Incremental decoder for a non-blocking reader: feed bytes, get whole messages."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add ``data`` and return every message now complete (possibly none)."""
        self._buffer += data
        messages: list[dict[str, Any]] = []
        while len(self._buffer) >= HEADER_BYTES:
            size = int.from_bytes(self._buffer[:HEADER_BYTES], "big")
            if size > self._max:
                raise WireError(f"frame header announces {size} bytes, above the {self._max} limit")
            end = HEADER_BYTES + size
            if len(self._buffer) < end:
                break
            with memoryview(self._buffer) as view:  # one copy of the body, not two
                payload = bytes(view[HEADER_BYTES:end])
            del self._buffer[:end]
            messages.append(decode_payload(payload))
        return messages

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame still buffered."""
        return len(self._buffer)


def _read_exact(fd: int, size: int) -> bytes | None:
    """``size`` bytes, or None at end of stream before the first byte."""
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            if remaining == size:
                return None
            raise WireError("stream ended in the middle of a frame")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, max_frame_bytes: int = MAX_FRAME_BYTES) -> dict[str, Any] | None:
    """Blocking read of one message from ``fd``; ``None`` at a clean end of stream."""
    header = _read_exact(fd, HEADER_BYTES)
    if header is None:
        return None
    size = int.from_bytes(header, "big")
    if size > max_frame_bytes:
        raise WireError(f"frame header announces {size} bytes, above the {max_frame_bytes} limit")
    payload = _read_exact(fd, size) if size else b""
    if payload is None:
        raise WireError("stream ended in the middle of a frame")
    return decode_payload(payload)


def write_all(fd: int, data: bytes) -> None:
    """Blocking write of every byte of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
