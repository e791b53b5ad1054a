"""An incremental parser of HTTP/1.1 responses, fed the bytes of one connection.

The common reply (headers and a short JSON body in one read) costs one ``find``, one
decode of the head and one slice; longer replies are gathered as a list of slices and
joined once.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

MAX_HEADER_BYTES = 64 * 1024
# Chat completions are kilobytes; a reply this large is a misbehaving server, not an answer.
MAX_BODY_BYTES = 256 * 1024 * 1024
_MAX_CHUNK_LINE = 4096
_HEX_DIGITS = b"0123456789abcdefABCDEF"

_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE, _DONE = range(7)


class MalformedResponse(Exception):
    """The server's bytes are not a well-formed HTTP/1.1 response."""


class Response:
    """A complete reply: ``headers`` has lower-cased names (repeated fields joined)."""

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


class ResponseParser:
    """Turns the bytes of a connection into ``Response``s, one request at a time."""

    started: bool
    keep_alive: bool
    _state: int
    _pending: bytes
    _parts: list[bytes]
    _size: int
    _remaining: int
    _after_body: int
    _status: int
    _reason: str
    _headers: dict[str, str]

    def __init__(self, max_body: int = MAX_BODY_BYTES) -> None:
        self._max_body = max_body
        self._steps: dict[int, Callable[[bytes, int], int]] = {
            _HEAD: self._head,
            _BODY: self._body,
            _CHUNK_SIZE: self._chunk_size,
            _CHUNK_END: self._chunk_end,
            _TRAILERS: self._trailers,
            _UNTIL_CLOSE: self._until_close,
        }
        self.reset()

    def reset(self) -> None:
        """Get ready for the reply to the next request."""
        # Whether any byte of the current reply has arrived.
        self.started = False
        # Whether the connection may carry another request once this reply is complete.
        self.keep_alive = True
        self._state = _HEAD
        self._pending = b""
        self._parts = []
        self._size = 0
        self._remaining = 0
        self._after_body = _DONE
        self._status = 0
        self._reason = ""
        self._headers = {}

    def feed(self, data: bytes) -> Response | None:
        """The response once ``data`` completes it, else ``None`` (more is needed).

        Raises ``MalformedResponse``."""
        self.started = True
        if self._pending:
            data = self._pending + data
            self._pending = b""
        pos = 0
        state = self._state
        while state != _DONE:
            new = self._steps[state](data, pos)
            if new == pos and self._state == state:
                self._pending = data[pos:]
                return None
            pos, state = new, self._state
        if pos < len(data):
            # Bytes past the end of the reply answer nothing we asked: the framing of the
            # connection can no longer be trusted.
            self.keep_alive = False
        return self._finish()

    def feed_eof(self) -> Response | None:
        """The response if the server's closing the connection completes it."""
        if self._state == _UNTIL_CLOSE:
            return self._finish()
        return None

    def _finish(self) -> Response:
        parts = self._parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        encoding = self._headers.get("content-encoding")
        if encoding is not None:
            body = decode_body(body, encoding, self._max_body)
        response = Response(self._status, self._reason, self._headers, body)
        keep_alive = self.keep_alive
        self.reset()
        self.keep_alive = keep_alive
        return response

    def _head(self, data: bytes, pos: int) -> int:
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            if len(data) - pos > MAX_HEADER_BYTES:
                raise MalformedResponse(f"the response head exceeds {MAX_HEADER_BYTES} bytes")
            return pos
        if end - pos > MAX_HEADER_BYTES:
            raise MalformedResponse(f"the response head exceeds {MAX_HEADER_BYTES} bytes")
        self._parse_head(data[pos:end].decode("latin-1"))
        return end + 4

    def _parse_head(self, head: str) -> None:
        lines = head.split("\r\n")
        version, self._status, self._reason = _status_line(lines[0])
        if 100 <= self._status < 200:
            if self._status == 101:
                raise MalformedResponse("the server switched protocols unasked")
            return  # an interim reply (100 Continue, 103 Early Hints): the real one follows
        self._headers = headers = _header_fields(lines)
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            self.keep_alive = "keep-alive" in connection
        elif "close" in connection:
            self.keep_alive = False
        self._frame_body(headers)

    def _frame_body(self, headers: dict[str, str]) -> None:
        transfer = headers.get("transfer-encoding")
        length = headers.get("content-length")
        if self._status in (204, 304):
            self._state = _DONE
        elif transfer is not None:
            if length is not None:
                # Both framings at once is how requests get smuggled: use this reply only.
                self.keep_alive = False
            if transfer.rsplit(",", 1)[-1].strip().lower() == "chunked":
                self._state = _CHUNK_SIZE
            else:
                self._state, self.keep_alive = _UNTIL_CLOSE, False
        elif length is not None:
            self._remaining = _content_length(length, self._max_body)
            self._after_body = _DONE
            self._state = _BODY if self._remaining else _DONE
        else:
            self._state, self.keep_alive = _UNTIL_CLOSE, False

    def _body(self, data: bytes, pos: int) -> int:
        take = min(self._remaining, len(data) - pos)
        if take <= 0:
            return pos
        self._parts.append(data if pos == 0 and take == len(data) else data[pos : pos + take])
        self._remaining -= take
        if not self._remaining:
            self._state = self._after_body
        return pos + take

    def _chunk_size(self, data: bytes, pos: int) -> int:
        end = data.find(b"\r\n", pos)
        if end < 0:
            if len(data) - pos > _MAX_CHUNK_LINE:
                raise MalformedResponse("a chunk-size line is too long")
            return pos
        line = data[pos:end]
        digits = line.split(b";", 1)[0].strip(b" \t")
        if not digits or len(digits) > 16 or digits.strip(_HEX_DIGITS):
            raise MalformedResponse(f"bad chunk size {line[:40]!r}")
        size = int(digits, 16)
        if size == 0:
            self._state = _TRAILERS
        else:
            self._grow(size)
            self._remaining, self._after_body, self._state = size, _CHUNK_END, _BODY
        return end + 2

    def _chunk_end(self, data: bytes, pos: int) -> int:
        if len(data) - pos < 2:
            return pos
        if data[pos : pos + 2] != b"\r\n":
            raise MalformedResponse("a chunk does not end with CRLF")
        self._state = _CHUNK_SIZE
        return pos + 2

    def _trailers(self, data: bytes, pos: int) -> int:
        # Trailer fields carry nothing this client reads; they only have to end.
        if data.startswith(b"\r\n", pos):
            self._state = _DONE
            return pos + 2
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            if len(data) - pos > MAX_HEADER_BYTES:
                raise MalformedResponse(f"the trailers exceed {MAX_HEADER_BYTES} bytes")
            return pos
        self._state = _DONE
        return end + 4

    def _until_close(self, data: bytes, pos: int) -> int:
        if pos >= len(data):
            return pos
        self._grow(len(data) - pos)
        self._parts.append(data[pos:] if pos else data)
        return len(data)

    def _grow(self, size: int) -> None:
        self._size += size
        if self._size > self._max_body:
            raise MalformedResponse(f"the body exceeds {self._max_body} bytes")


def _status_line(line: str) -> tuple[str, int, str]:
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise MalformedResponse(f"bad status line {line[:80]!r}")
    return version, int(code), reason.strip()


def _header_fields(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name or "\t" in name:
            # Also rejects obsolete line folding (a line that starts with whitespace).
            raise MalformedResponse(f"bad header line {line[:80]!r}")
        name = name.lower()
        value = value.strip(" \t")
        previous = headers.get(name)
        headers[name] = value if previous is None else f"{previous}, {value}"
    return headers


def _content_length(value: str, limit: int) -> int:
    # Repeated Content-Length fields were joined with commas; they must agree.
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1:
        raise MalformedResponse(f"conflicting Content-Length {value[:80]!r}")
    text = values.pop()
    if not text.isdigit() or not text.isascii():
        raise MalformedResponse(f"bad Content-Length {value[:80]!r}")
    length = int(text)
    if length > limit:
        raise MalformedResponse(f"the body exceeds {limit} bytes")
    return length


def decode_body(body: bytes, encoding: str, limit: int = MAX_BODY_BYTES) -> bytes:
    """``body`` with its ``Content-Encoding`` (gzip, deflate, identity) undone."""
    for coding in reversed(encoding.lower().split(",")):
        coding = coding.strip()
        if coding in ("", "identity"):
            continue
        if coding in ("gzip", "x-gzip"):
            body = _inflate(body, 16 + zlib.MAX_WBITS, limit)
        elif coding == "deflate":
            try:
                body = _inflate(body, zlib.MAX_WBITS, limit)
            except zlib.error:
                # Some servers send a raw deflate stream without the zlib wrapper.
                body = _inflate(body, -zlib.MAX_WBITS, limit)
        else:
            raise MalformedResponse(f"unsupported Content-Encoding {encoding[:40]!r}")
    return body


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        if wbits == zlib.MAX_WBITS:
            raise
        raise MalformedResponse("the compressed body is corrupt") from None
    if len(out) > limit:
        raise MalformedResponse(f"the decoded body exceeds {limit} bytes")
    if not inflater.eof:
        raise MalformedResponse("the compressed body is truncated")
    return out
