"""A minimal HTTP/1.1 request parser and response writer over asyncio streams.

Only what an OpenAI client sends is supported: a request line, headers, and a body sized
by ``Content-Length``. Connections are kept alive unless the client asks otherwise.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

REASONS: dict[int, str] = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
}

_MAX_HEADERS = 100


class HttpParseError(Exception):
    """The request is not HTTP/1.1 we understand; reply ``status`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One parsed request. Header names are lower-cased."""

    method: str
    path: str
    version: str
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        """Whether the client wants the connection kept open after this request."""
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


async def read_request(reader: asyncio.StreamReader, max_body: int) -> HttpRequest | None:
    """Read one request; ``None`` when the client closed the connection between requests."""
    try:
        line = await reader.readline()
    except (ConnectionError, asyncio.LimitOverrunError, ValueError):
        return None
    if not line:
        return None
    parts = line.decode("latin-1").strip().split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpParseError(400, "malformed request line")
    method, target, version = parts
    headers = await _read_headers(reader)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise HttpParseError(501, "chunked request bodies are not supported")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError as exc:
        raise HttpParseError(400, "invalid Content-Length") from exc
    if length < 0:
        raise HttpParseError(400, "invalid Content-Length")
    if length > max_body:
        raise HttpParseError(413, f"body of {length} bytes exceeds the {max_body} byte limit")
    body = await reader.readexactly(length) if length else b""
    path = target.split("?", 1)[0]
    return HttpRequest(method.upper(), path, version, headers, body)


async def _read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADERS):
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise HttpParseError(400, "malformed header line")
        headers[name.strip().lower()] = value.strip()
    raise HttpParseError(400, "too many headers")


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def write_response(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    keep_alive: bool = True,
    extra_headers: dict[str, str] | None = None,
) -> None:
    """Write a complete response with a ``Content-Length`` body."""
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
        "Connection": "keep-alive" if keep_alive else "close",
        **(extra_headers or {}),
    }
    writer.write(_head(status, headers) + body)
    await writer.drain()


async def write_json(
    writer: asyncio.StreamWriter,
    status: int,
    payload: Any,
    *,
    keep_alive: bool = True,
    extra_headers: dict[str, str] | None = None,
) -> None:
    """Write ``payload`` as a JSON response."""
    body = json.dumps(payload).encode()
    await write_response(writer, status, body, keep_alive=keep_alive, extra_headers=extra_headers)


class SseWriter:
    """Writes a ``text/event-stream`` body with chunked transfer encoding (keeps keep-alive)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def start(self, *, keep_alive: bool = True) -> None:
        """Send the response head."""
        headers = {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "Transfer-Encoding": "chunked",
            "Connection": "keep-alive" if keep_alive else "close",
        }
        self._writer.write(_head(200, headers))
        await self._writer.drain()

    async def send(self, data: str) -> None:
        """Send one ``data:`` event."""
        payload = f"data: {data}\n\n".encode()
        self._writer.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        await self._writer.drain()

    async def finish(self) -> None:
        """End the chunked body."""
        self._writer.write(b"0\r\n\r\n")
        await self._writer.drain()
