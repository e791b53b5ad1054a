"""One keep-alive HTTP/1.1 connection as an asyncio protocol, and the idle ones of an origin.

A protocol rather than a stream reader: the reply is parsed in ``data_received`` as it
arrives, with no reader buffer, task wake-up or ``readuntil`` per read.
"""

from __future__ import annotations

import asyncio
from typing import cast

from rlm_engine.lm.http1_parse import MalformedResponse, Response, ResponseParser

# Timers may fire a clock tick early; a check that lands this close counts as due.
_SLACK_S = 1e-3


class ServerDisconnected(ConnectionError):
    """The server closed or reset the connection before its reply was complete."""

    def __init__(self, message: str, *, before_reply: bool) -> None:
        super().__init__(message)
        # Nothing of the reply had arrived: on a reused connection, the server had closed
        # it while idle, and the request is safe to send again on a fresh one.
        self.before_reply = before_reply


class Pool:
    """The idle connections to one origin on one event loop, reused last-in first-out
    (the most recently used is the least likely to have been closed by the server)."""

    __slots__ = ("closed", "idle")

    def __init__(self) -> None:
        self.idle: list[Connection] = []
        self.closed = False

    def take(self) -> Connection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            conn.abort()
        return None

    def put(self, conn: Connection) -> None:
        if self.closed or not conn.usable():
            conn.close()
        else:
            self.idle.append(conn)

    def forget(self, conn: Connection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)


class Connection(asyncio.Protocol):
    """One connection, carrying one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: Pool) -> None:
        self._loop = loop
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._parser = ResponseParser()
        self._waiter: asyncio.Future[Response] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._read_timeout: float | None = None
        self._last_read = 0.0
        self._lost: asyncio.Future[None] | None = None
        self._closed = False
        self._gone = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def usable(self) -> bool:
        transport = self._transport
        return (
            not self._closed
            and self._parser.keep_alive
            and transport is not None
            and not transport.is_closing()
        )

    def send(
        self, data: bytes, deadline: float, read_timeout: float | None
    ) -> asyncio.Future[Response]:
        """Write the request; the future is the reply (or the failure)."""
        assert self._transport is not None and self._waiter is None
        loop = self._loop
        self._waiter = waiter = loop.create_future()
        self._deadline = deadline
        self._read_timeout = read_timeout
        self._last_read = loop.time()
        self._timer = loop.call_at(self._next_check(), self._check_time)
        self._transport.write(data)
        return waiter

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Bytes nobody asked for: the connection's framing cannot be trusted.
            self.abort()
            return
        self._last_read = self._loop.time()
        try:
            response = self._parser.feed(data)
        except MalformedResponse as exc:
            self._fail(exc)
            return
        if response is not None:
            self._deliver(response)

    def eof_received(self) -> bool | None:
        return None  # the transport closes; ``connection_lost`` settles the reply

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = self._gone = True
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        if self._waiter is None:
            self._pool.forget(self)
            return
        try:
            response = self._parser.feed_eof() if exc is None else None
        except MalformedResponse as error:
            self._fail(error)
            return
        if response is None:
            before = not self._parser.started
            what = "reset" if exc is not None else "closed"
            detail = f": {exc}" if exc is not None else ""
            error = ServerDisconnected(
                f"the server {what} the connection "
                f"{'before replying' if before else 'in the middle of its reply'}{detail}",
                before_reply=before,
            )
            error.__cause__ = exc
            self._fail(error)
            return
        self._deliver(response)

    def _next_check(self) -> float:
        read_timeout = self._read_timeout
        if read_timeout is None:
            return self._deadline
        return min(self._deadline, self._last_read + read_timeout)

    def _check_time(self) -> None:
        # One timer per request, moved on when it finds data has arrived meanwhile: cheaper
        # than re-arming a timer on every read.
        self._timer = None
        now = self._loop.time() + _SLACK_S
        if now >= self._deadline:
            self._fail(TimeoutError("the request took longer than its timeout"))
            return
        read_timeout = self._read_timeout
        if read_timeout is not None and now >= self._last_read + read_timeout:
            self._fail(TimeoutError(f"the server sent nothing for {read_timeout:g} s"))
            return
        self._timer = self._loop.call_at(self._next_check(), self._check_time)

    def _settle(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _deliver(self, response: Response) -> None:
        waiter, self._waiter = self._waiter, None
        self._settle()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        self.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def abort(self) -> None:
        """Drop the connection at once (a failed or abandoned request)."""
        self._settle()
        self._closed = True
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        self._settle()
        self._closed = True
        if self._transport is not None:
            self._transport.close()

    def wait_lost(self) -> asyncio.Future[None]:
        """Done once the transport has let go of the connection."""
        if self._lost is None:
            self._lost = self._loop.create_future()
            if self._gone:
                self._lost.set_result(None)
        return self._lost
