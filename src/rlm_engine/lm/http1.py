"""A small HTTP/1.1 client on asyncio protocols, for short POSTs over keep-alive connections.

A fan-out of hundreds of concurrent model calls runs on one event loop, so the client's
CPU per request is wall time: a request is one prepared head plus its length and body in
one ``transport.write``, and the reply is parsed as it arrives (``http1_parse``). Nothing
heavy is imported: ``ssl`` only for an ``https`` URL.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from rlm_engine.lm.http1_conn import Connection, Pool, ServerDisconnected
from rlm_engine.lm.http1_parse import MalformedResponse, Response

if TYPE_CHECKING:
    import ssl

__all__ = [
    "ConnectFailed",
    "Http1Client",
    "MalformedResponse",
    "Response",
    "ServerDisconnected",
    "Target",
    "post_target",
]

_tls_context: ssl.SSLContext | None = None


class ConnectFailed(ConnectionError):
    """No connection could be opened: refused, unreachable, unresolvable or TLS refused."""


def default_tls_context() -> ssl.SSLContext:
    """The verifying TLS context (honours ``SSL_CERT_FILE``/``SSL_CERT_DIR``), made once:
    loading the CA store costs tens of milliseconds."""
    global _tls_context
    if _tls_context is None:
        import ssl

        _tls_context = ssl.create_default_context()
    return _tls_context


class Target:
    """Where one kind of request goes, with its request line and fixed headers encoded."""

    __slots__ = ("head", "host", "key", "port", "tls")

    def __init__(self, host: str, port: int, tls: bool, head: bytes) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.key = ("https" if tls else "http", host, port)
        # Ends with "Content-Length: ": a request appends its length, CRLF CRLF and body.
        self.head = head


def post_target(url: str, headers: Mapping[str, str]) -> Target:
    """The ``Target`` of POSTs to ``url`` with ``headers`` (which override ours by name,
    case-insensitively). Raises ``ValueError`` for a URL or header this client cannot send."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = parts.hostname
    default_port = 443 if scheme == "https" else 80
    port = parts.port or default_port
    authority = f"[{host}]" if ":" in host else host
    if port != default_port:
        authority = f"{authority}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    fields = {"host": ("Host", authority), "accept-encoding": ("Accept-Encoding", "gzip, deflate")}
    for name, value in headers.items():
        fields[name.lower()] = (name, value)
    # Framing is ours to set: a caller's length or transfer coding would corrupt it.
    for name in ("content-length", "transfer-encoding", "connection"):
        fields.pop(name, None)
    lines = [f"POST {target} HTTP/1.1"]
    for name, value in fields.values():
        if not name or any(c in name for c in " \t\r\n:") or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} cannot be sent")
        lines.append(f"{name}: {value}")
    lines.append("Content-Length: ")
    try:
        head = "\r\n".join(lines).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"a header of {url!r} is not Latin-1 text") from exc
    return Target(host, port, scheme == "https", head)


class Http1Client:
    """Sends requests to ``Target``s over connections pooled per event loop and origin.

    Connections are not capped (the caller bounds its concurrency). A connection is reused
    only after a complete reply that allows it; one the server closed while idle fails its
    next request before any reply, which is then sent once more on a fresh connection.
    """

    def __init__(self, *, tls_context: ssl.SSLContext | None = None) -> None:
        self._tls_context = tls_context
        self._pools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, str, int], Pool]
        ] = weakref.WeakKeyDictionary()

    async def send(
        self, target: Target, body: bytes, *, timeout_s: float, read_timeout_s: float | None
    ) -> Response:
        """POST ``body``. ``timeout_s`` bounds the whole request, ``read_timeout_s`` the
        silence between two reads of the reply; both raise ``TimeoutError``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pools = self._pools.get(loop)
        if pools is None:
            self._forget_closed_loops()
            pools = self._pools[loop] = {}
        pool = pools.get(target.key)
        if pool is None:
            pool = pools[target.key] = Pool()
        data = b"".join((target.head, b"%d\r\n\r\n" % len(body), body))
        conn = pool.take()
        if conn is not None:
            try:
                return await _exchange(pool, conn, data, deadline, read_timeout_s)
            except ServerDisconnected as exc:
                if not exc.before_reply:
                    raise
        conn = await self._connect(loop, target, pool, deadline)
        return await _exchange(pool, conn, data, deadline, read_timeout_s)

    def _forget_closed_loops(self) -> None:
        # Pooled connections hold their loop, so a loop closed without ``aclose`` would
        # never leave the weak mapping; its sockets can only be dropped now.
        for loop in [loop for loop in self._pools if loop.is_closed()]:
            for pool in self._pools.pop(loop).values():
                pool.idle.clear()

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, target: Target, pool: Pool, deadline: float
    ) -> Connection:
        tls = (self._tls_context or default_tls_context()) if target.tls else None
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    lambda: Connection(loop, pool),
                    target.host,
                    target.port,
                    ssl=tls,
                    server_hostname=target.host if tls is not None else None,
                )
        except TimeoutError:
            raise
        except OSError as exc:  # refused, unreachable, DNS, certificate (ssl.SSLError)
            raise ConnectFailed(f"cannot connect to {target.host}:{target.port}: {exc}") from exc
        return conn

    async def aclose(self) -> None:
        """Close the idle connections of the running event loop; connections still
        carrying a request close when it ends."""
        pools = self._pools.pop(asyncio.get_running_loop(), None)
        if not pools:
            return
        closing: list[Connection] = []
        for pool in pools.values():
            pool.closed = True
            closing.extend(pool.idle)
            pool.idle.clear()
        lost = [conn.wait_lost() for conn in closing]
        for conn in closing:
            conn.close()
        if lost:
            # A TLS close waits on the peer; do not let a silent one hold the caller.
            await asyncio.wait(lost, timeout=1.0)
        for conn in closing:
            conn.abort()


async def _exchange(
    pool: Pool, conn: Connection, data: bytes, deadline: float, read_timeout: float | None
) -> Response:
    waiter = conn.send(data, deadline, read_timeout)
    try:
        response = await waiter
    except BaseException:
        # A timeout, a cancellation or a broken reply: the connection's state is unknown.
        conn.abort()
        raise
    pool.put(conn)
    return response
