"""The stdlib HTTP/1.1 client of the direct path, against real loopback servers that
frame their replies every way HTTP/1.1 allows, and misbehave on purpose."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import json
import socket
import ssl
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from rlm_engine.errors import ConfigurationError, ProviderError
from rlm_engine.lm import http1
from rlm_engine.lm.http1 import Http1Client, post_target
from rlm_engine.lm.http1_parse import MalformedResponse, ResponseParser
from rlm_engine.lm.openai_direct import DirectChat

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
# Answers one request: gets the request (head, body), the request's number on the server
# and on its connection; writes the reply itself. Returning False closes the connection.
Handler = Callable[["Request", Writer], Awaitable[bool | None]]


class Request:
    def __init__(
        self, head: str, body: bytes, n: int, on_conn: int, stopped: asyncio.Event
    ) -> None:
        lines = head.split("\r\n")
        self.line = lines[0]
        self.headers = {
            k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])
        }
        self.body = body
        self.n = n
        self.on_conn = on_conn
        # Set when the server stops: what a handler that stalls waits for.
        self.stopped = stopped

    def json(self) -> Any:
        return json.loads(self.body)


def reply(status: int, body: bytes, *extra: str, reason: str = "OK") -> bytes:
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def json_reply(value: object, *extra: str) -> bytes:
    return reply(200, json.dumps(value).encode(), "Content-Type: application/json", *extra)


def reset(writer: Writer) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed proxy would."""
    sock: socket.socket = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Server:
    """A loopback HTTP/1.1 server whose replies are written by ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[Request] = []
        self.closed = 0  # connections the client closed
        self.url = ""
        self._tasks: list[asyncio.Task[None]] = []
        self._writers: list[Writer] = []
        self._stopped = asyncio.Event()

    async def serve(self, reader: Reader, writer: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.append(task)
        self._writers.append(writer)
        self.connections += 1
        on_conn = 0
        try:
            while True:
                try:
                    head = (await reader.readuntil(b"\r\n\r\n"))[:-4].decode("latin-1")
                except asyncio.IncompleteReadError:
                    self.closed += 1
                    return
                request = Request(head, b"", len(self.requests), on_conn, self._stopped)
                request.body = await reader.readexactly(int(request.headers["content-length"]))
                self.requests.append(request)
                on_conn += 1
                if await self.handler(request, writer) is False:
                    return
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed += 1
        finally:
            writer.close()

    async def stop(self) -> None:
        # Handlers end on their own rather than being cancelled: Python 3.11's stream
        # server logs every cancelled handler as an error.
        self._stopped.set()
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.sleep(0)  # the transports' closing callbacks run before the loop ends


Start = Callable[..., Awaitable[Server]]


@pytest.fixture
async def serve() -> AsyncIterator[Start]:
    servers: list[tuple[asyncio.Server, Server]] = []

    async def start(
        handler: Handler, *, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> Server:
        server = Server(handler)
        listener = await asyncio.start_server(server.serve, host, 0, ssl=tls)
        servers.append((listener, server))
        port = listener.sockets[0].getsockname()[1]
        name = f"[{host}]" if ":" in host else host
        server.url = f"{'https' if tls else 'http'}://{name}:{port}/v1"
        return server

    yield start
    for listener, server in servers:
        listener.close()
        await server.stop()


async def echo(request: Request, writer: Writer) -> None:
    writer.write(json_reply({"n": request.json()["n"]}))


def chat(url: str, **headers: str) -> DirectChat:
    return DirectChat(provider="sim", base_url=url, api_key="k", headers=headers or None)


Connect = Callable[..., DirectChat]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """`chat`, closed when the test ends (before its servers stop)."""
    clients: list[DirectChat] = []

    def opened(url: str, **headers: str) -> DirectChat:
        clients.append(chat(url, **headers))
        return clients[-1]

    yield opened
    for client in clients:
        await client.aclose()


async def post(chat: DirectChat, n: int = 0, **kw: Any) -> Any:
    kw.setdefault("timeout_s", 30.0)
    return await asyncio.wait_for(chat.post({"n": n}, **kw), timeout=60)


async def failure(chat: DirectChat, n: int = 0, **kw: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await post(chat, n, **kw)
    return caught.value


# Framing and keep-alive


async def test_sequential_requests_share_one_keep_alive_connection(
    serve: Start, connect: Connect
) -> None:
    server = await serve(echo)
    client = connect(server.url + "/")
    replies = [await post(client, n) for n in range(4)]
    assert [r["n"] for r in replies] == [0, 1, 2, 3]
    assert server.connections == 1
    assert [r.on_conn for r in server.requests] == [0, 1, 2, 3]
    assert server.requests[0].line == "POST /v1/chat/completions HTTP/1.1"


async def test_requests_carry_host_with_port_auth_encoding_and_extra_headers(
    serve: Start, connect: Connect
) -> None:
    server = await serve(echo)
    client = connect(server.url, **{"X-Extra": "yes", "user-agent": "custom"})
    await post(client)
    headers = server.requests[0].headers
    port = server.url.rsplit(":", 1)[1].split("/")[0]
    assert headers["host"] == f"127.0.0.1:{port}"
    assert headers["authorization"] == "Bearer k"
    assert headers["content-type"] == "application/json"
    assert headers["accept-encoding"] == "gzip, deflate"
    assert headers["x-extra"] == "yes"
    assert headers["user-agent"] == "custom"  # overrides ours whatever its case
    assert json.loads(server.requests[0].body) == {"n": 0}


def test_the_request_head_keeps_queries_prefixes_and_default_ports() -> None:
    target = post_target("http://h:8080/base/v1/chat/completions?api-version=2", {"A": "b"})
    lines = target.head.decode().split("\r\n")
    assert lines[0] == "POST /base/v1/chat/completions?api-version=2 HTTP/1.1"
    assert "Host: h:8080" in lines and "A: b" in lines
    assert lines[-1] == "Content-Length: "
    assert b"Host: h\r\n" in post_target("http://h:80/x", {}).head
    assert b"Host: h\r\n" in post_target("https://h:443/x", {}).head
    assert b"Host: [::1]:9\r\n" in post_target("http://[::1]:9/x", {}).head
    assert post_target("https://h/x", {}).key == ("https", "h", 443)


@pytest.mark.parametrize(
    ("url", "headers"),
    [("ftp://h/x", {}), ("http:///x", {}), ("http://h/x", {"X": "a\r\nEvil: 1"})],
)
def test_urls_and_headers_that_cannot_be_sent_are_refused(
    url: str, headers: dict[str, str]
) -> None:
    with pytest.raises(ValueError):
        post_target(url, headers)


async def test_a_bad_base_url_is_a_configuration_error_at_the_first_request() -> None:
    client = DirectChat(provider="sim", base_url="ftp://h/v1", api_key="k")
    with pytest.raises(ConfigurationError, match="http") as raised:
        await client.post({}, timeout_s=1.0)
    assert "--base-url" in raised.value.hint  # what to change, on the CLI's hint line


async def test_a_chunked_body_with_extensions_and_trailers_arrives_whole(
    serve: Start, connect: Connect
) -> None:
    payload = json.dumps({"text": "x" * 3000}).encode()

    async def chunked(request: Request, writer: Writer) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(payload), 1000):
            part = payload[start : start + 1000]
            writer.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\nX-Trailer: t\r\n\r\n")

    server = await serve(chunked)
    client = connect(server.url)
    first = await post(client)
    second = await post(client)
    assert first == second == {"text": "x" * 3000}
    assert server.connections == 1


def raw_deflate(data: bytes) -> bytes:
    """A deflate stream without the zlib wrapper, as some servers send it."""
    return zlib.compress(data, wbits=-zlib.MAX_WBITS)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", raw_deflate),
    ],
)
async def test_compressed_bodies_are_decoded(
    serve: Start, encoding: str, compress: Callable[[bytes], bytes], connect: Connect
) -> None:
    async def compressed(request: Request, writer: Writer) -> None:
        body = compress(json.dumps({"n": request.json()["n"]}).encode())
        writer.write(reply(200, body, f"Content-Encoding: {encoding}"))

    server = await serve(compressed)
    client = connect(server.url)
    assert await post(client, 7) == {"n": 7}


async def test_a_body_read_until_close_is_complete_and_its_connection_not_reused(
    serve: Start, connect: Connect
) -> None:
    async def until_close(request: Request, writer: Writer) -> bool:
        body = json.dumps({"n": request.json()["n"]}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + body[:3])
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(body[3:])
        return False

    server = await serve(until_close)
    client = connect(server.url)
    assert [await post(client, n) for n in (1, 2)] == [{"n": 1}, {"n": 2}]
    assert server.connections == 2


async def test_interim_1xx_replies_are_skipped(serve: Start, connect: Connect) -> None:
    async def continued(request: Request, writer: Writer) -> None:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
        writer.write(json_reply({"n": request.json()["n"]}))

    server = await serve(continued)
    client = connect(server.url)
    assert await post(client, 3) == {"n": 3}
    assert await post(client, 4) == {"n": 4}
    assert server.connections == 1


@pytest.mark.parametrize(
    "head",
    ["HTTP/1.1 200 OK\r\nConnection: close", "HTTP/1.0 200 OK"],
)
async def test_a_reply_that_does_not_keep_alive_is_not_reused(
    serve: Start, head: str, connect: Connect
) -> None:
    async def closing(request: Request, writer: Writer) -> None:
        body = json.dumps({"n": request.json()["n"]}).encode()
        writer.write(f"{head}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)

    server = await serve(closing)  # the server itself keeps the connections open
    client = connect(server.url)
    assert [await post(client, n) for n in (1, 2, 3)] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert server.connections == 3


async def test_a_connection_the_server_closed_while_idle_is_not_used_again(
    serve: Start, connect: Connect
) -> None:
    async def one_per_connection(request: Request, writer: Writer) -> bool:
        await echo(request, writer)
        await writer.drain()
        return False  # closes without saying so in the reply

    server = await serve(one_per_connection)
    client = connect(server.url)
    assert await post(client, 1) == {"n": 1}
    await asyncio.sleep(0.05)
    assert await post(client, 2) == {"n": 2}
    assert server.connections == 2


async def test_a_reused_connection_dropped_before_the_reply_is_retried_once_fresh(
    serve: Start, connect: Connect
) -> None:
    # The server takes the second request on the old connection and drops it unanswered,
    # as one does that closes an idle connection while the request is on its way.
    async def drop_second(request: Request, writer: Writer) -> bool | None:
        if request.on_conn == 1:
            return False
        await echo(request, writer)
        return None

    server = await serve(drop_second)
    client = connect(server.url)
    assert await post(client, 1) == {"n": 1}
    assert await post(client, 2) == {"n": 2}
    assert server.connections == 2
    assert [r.json()["n"] for r in server.requests] == [1, 2, 2]


async def test_a_fresh_connection_dropped_before_the_reply_is_not_retried(
    serve: Start, connect: Connect
) -> None:
    async def drop(request: Request, writer: Writer) -> bool:
        return False

    server = await serve(drop)
    client = connect(server.url)
    error = await failure(client)
    assert error.kind == "connection"
    assert len(server.requests) == 1


async def test_64_concurrent_requests_are_all_answered_with_their_own_replies(
    serve: Start, connect: Connect
) -> None:
    async def slow_echo(request: Request, writer: Writer) -> None:
        await asyncio.sleep(0.02)
        await echo(request, writer)

    server = await serve(slow_echo)
    client = connect(server.url)
    for _ in range(2):  # the second wave runs on the pooled connections
        replies = await asyncio.gather(*(post(client, n) for n in range(64)))
        assert [r["n"] for r in replies] == list(range(64))
    assert server.connections == 64
    assert len(server.requests) == 128


async def test_aclose_closes_the_pooled_connections(serve: Start) -> None:
    server = await serve(echo)
    client = chat(server.url)
    await post(client)
    await client.aclose()
    for _ in range(100):
        if server.closed:
            break
        await asyncio.sleep(0.01)
    assert server.closed == 1


def test_each_event_loop_gets_its_own_connections() -> None:
    # A synchronous caller runs one loop after another; a connection of a closed loop
    # must never be handed to the next one.
    ready = threading.Event()
    state: dict[str, Any] = {}

    def run_server() -> None:
        async def main() -> None:
            server = Server(echo)
            listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
            state["server"], state["url"] = (
                server,
                (f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/v1"),
            )
            state["stop"] = asyncio.get_running_loop().create_future()
            state["loop"] = asyncio.get_running_loop()
            ready.set()
            await state["stop"]
            listener.close()
            await server.stop()

        asyncio.run(main())

    thread = threading.Thread(target=run_server)
    thread.start()
    try:
        assert ready.wait(10)
        client = chat(state["url"])
        loops = [asyncio.new_event_loop() for _ in range(2)]
        try:
            for n in range(4):  # loop 0, 1, 0, 1: each reuses its own connection
                assert loops[n % 2].run_until_complete(post(client, n)) == {"n": n}
        finally:
            for loop in loops:
                loop.run_until_complete(client.aclose())
                loop.close()
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set_result, None)
        thread.join(10)
    assert state["server"].connections == 2
    assert [r.on_conn for r in state["server"].requests] == [0, 0, 1, 1]


async def test_ipv6_loopback(serve: Start, connect: Connect) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1 on this machine")
    server = await serve(echo, host="::1")
    client = connect(server.url)
    assert (await post(client, 5))["n"] == 5
    assert server.requests[0].headers["host"].startswith("[::1]:")


# Failures and how DirectChat names them


async def test_a_reset_in_the_middle_of_the_body_is_a_connection_error(
    serve: Start, connect: Connect
) -> None:
    async def half(request: Request, writer: Writer) -> bool:
        body = json.dumps({"n": 1, "pad": "x" * 100}).encode()
        writer.write(reply(200, body)[: -len(body) // 2])
        await writer.drain()
        await asyncio.sleep(0.05)
        reset(writer)
        return False

    server = await serve(half)
    client = connect(server.url)
    error = await failure(client)
    assert error.kind == "connection" and error.retryable
    assert len(server.requests) == 1  # a reply had begun: never sent again


async def test_a_server_that_stalls_after_its_headers_hits_the_read_timeout(
    serve: Start,
) -> None:
    async def stall(request: Request, writer: Writer) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()
        await request.stopped.wait()

    server = await serve(stall)
    client = chat(server.url)
    target = post_target(server.url + "/chat/completions", {})
    raw = Http1Client()
    try:
        error = await failure(client, timeout_s=30.0, read_timeout_s=0.2)
        with pytest.raises(TimeoutError, match="sent nothing"):
            await raw.send(target, b"{}", timeout_s=30.0, read_timeout_s=0.2)
    finally:
        await client.aclose()
        await raw.aclose()
    assert error.kind == "timeout" and error.retryable


async def test_a_reply_that_trickles_past_the_total_timeout_times_out(
    serve: Start, connect: Connect
) -> None:
    async def trickle(request: Request, writer: Writer) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        while not request.stopped.is_set():
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.02)

    server = await serve(trickle)
    target = post_target(server.url + "/chat/completions", {})
    raw = Http1Client()
    try:
        with pytest.raises(TimeoutError, match="longer than its timeout"):
            await raw.send(target, b"{}", timeout_s=0.3, read_timeout_s=5.0)
    finally:
        await raw.aclose()
    client = connect(server.url)
    error = await failure(client, timeout_s=0.3, read_timeout_s=None)
    assert error.kind == "timeout"


async def test_a_timed_out_or_cancelled_request_closes_its_connection(
    serve: Start, connect: Connect
) -> None:
    async def slow_first(request: Request, writer: Writer) -> None:
        if request.n == 0:
            await asyncio.sleep(0.5)
        await echo(request, writer)

    server = await serve(slow_first)
    client = connect(server.url)
    task = asyncio.ensure_future(post(client, 0))
    while not server.requests:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await post(client, 1) == {"n": 1}
    assert server.connections == 2


async def test_a_refused_connection_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = chat(f"http://127.0.0.1:{port}/v1")
    error = await failure(client)
    assert error.kind == "connection" and error.retryable
    assert f"127.0.0.1:{port}" in str(error)


async def test_429_with_retry_after_is_a_rate_limit_with_its_wait(
    serve: Start, connect: Connect
) -> None:
    async def limited(request: Request, writer: Writer) -> None:
        body = json.dumps({"error": {"message": "slow down", "code": "rate_limit"}}).encode()
        writer.write(reply(429, body, "retry-after: 7", reason="Too Many Requests"))

    server = await serve(limited)
    client = connect(server.url)
    error = await failure(client)
    assert error.kind == "rate_limit"
    assert error.retry_after_s == 7.0
    assert error.status == 429
    assert "slow down" in str(error)


async def test_500_is_a_server_error(serve: Start, connect: Connect) -> None:
    async def broken(request: Request, writer: Writer) -> None:
        writer.write(reply(500, b"upstream exploded", reason="Internal Server Error"))

    server = await serve(broken)
    client = connect(server.url)
    error = await failure(client)
    again = await failure(client)  # an error reply leaves the connection usable
    assert error.kind == again.kind == "server"
    assert "upstream exploded" in str(error)
    assert server.connections == 1


@pytest.mark.parametrize(
    "raw",
    [
        reply(200, b"<html>not json</html>"),
        b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}",
        b"ICY 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nX: y\r\n folded\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * (70 * 1024) + b"\r\n\r\n",
    ],
)
async def test_replies_that_are_not_http_or_not_json_are_malformed(
    serve: Start, raw: bytes, connect: Connect
) -> None:
    async def garbage(request: Request, writer: Writer) -> None:
        writer.write(raw)

    server = await serve(garbage)
    client = connect(server.url)
    error = await failure(client)
    assert error.kind == "malformed" and error.retryable


# The parser on its own, fed a byte at a time


def test_the_parser_completes_a_reply_fed_one_byte_at_a_time() -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: gzip, chunked\r\nSet-A: 1\r\nset-a: 2\r\n"
        b"Retry-After: 3\r\n\r\n"
    )
    body = gzip.compress(b"hello world")
    raw += b"%x\r\n%s\r\n0\r\nT: 1\r\n\r\n" % (len(body), body)
    parser = ResponseParser()
    responses = [parser.feed(raw[i : i + 1]) for i in range(len(raw))]
    assert all(r is None for r in responses[:-1])
    response = responses[-1]
    assert response is not None
    assert (response.status, response.reason) == (201, "Created")
    assert response.headers["set-a"] == "1, 2"
    assert response.headers["retry-after"] == "3"
    # gzip as a transfer coding is not undone (no Content-Encoding): the bytes are as sent
    assert response.body == body
    assert parser.keep_alive


def test_the_parser_caps_the_body_and_flags_extra_bytes() -> None:
    with pytest.raises(MalformedResponse, match="exceeds"):
        ResponseParser(max_body=10).feed(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
    parser = ResponseParser(max_body=10)
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n")
    with pytest.raises(MalformedResponse, match="exceeds"):
        parser.feed(b"8\r\n")
    bomb = gzip.compress(b"0" * 1000)
    with pytest.raises(MalformedResponse, match="decoded body exceeds"):
        ResponseParser(max_body=100).feed(reply(200, bomb, "Content-Encoding: gzip"))
    extra = ResponseParser()
    response = extra.feed(reply(200, b"{}") + b"HTTP/1.1 200 OK\r\n")
    assert response is not None and response.body == b"{}"
    assert not extra.keep_alive


def test_204_and_304_have_no_body() -> None:
    for status in (204, 304):
        response = ResponseParser().feed(f"HTTP/1.1 {status} X\r\n\r\n".encode())
        assert response is not None and response.body == b""


# TLS


def _certificates(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``localhost`` signed by it: (ca, cert, key)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> Any:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("rlm test CA"))
        .issuer_name(name("rlm test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture
def tls_server_context(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    ca, cert, key = _certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, ca


@pytest.fixture
def fresh_tls_default(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path | None], None]:
    """Makes the client build its process-wide TLS context again, trusting ``ca``."""

    def use(ca: Path | None) -> None:
        monkeypatch.setattr(http1, "_tls_context", None)
        # A file that does not exist leaves the context trusting nothing at all.
        monkeypatch.setenv("SSL_CERT_FILE", str(ca or "/nonexistent/ca.pem"))
        monkeypatch.setenv("SSL_CERT_DIR", "/nonexistent")

    return use


async def test_https_verifies_the_server_against_ssl_cert_file(
    serve: Start,
    tls_server_context: tuple[ssl.SSLContext, Path],
    fresh_tls_default: Callable[[Path | None], None],
    connect: Connect,
) -> None:
    context, ca = tls_server_context
    fresh_tls_default(ca)
    server = await serve(echo, tls=context)
    client = connect(server.url.replace("127.0.0.1", "localhost"))
    assert (await post(client, 1))["n"] == 1
    assert (await post(client, 2))["n"] == 2
    assert server.connections == 1


async def test_https_refuses_a_wrong_hostname_and_an_untrusted_certificate(
    serve: Start,
    tls_server_context: tuple[ssl.SSLContext, Path],
    fresh_tls_default: Callable[[Path | None], None],
) -> None:
    context, ca = tls_server_context
    server = await serve(echo, tls=context)
    fresh_tls_default(ca)
    wrong_name = chat(server.url)  # 127.0.0.1: not a name the certificate holds
    mismatch = await failure(wrong_name)
    fresh_tls_default(None)
    untrusted = chat(server.url.replace("127.0.0.1", "localhost"))
    unknown = await failure(untrusted)
    for error in (mismatch, unknown):
        assert error.kind == "connection"
        assert "certificate verify failed" in str(error)
    assert "mismatch" in str(mismatch)
    assert not server.requests


def test_the_tls_context_is_made_once_and_only_for_https() -> None:
    import subprocess
    import sys

    code = (
        "import ssl, sys\n"
        "made = []\n"
        "real = ssl.create_default_context\n"
        "ssl.create_default_context = lambda *a, **k: made.append(1) or real(*a, **k)\n"
        "from rlm_engine.lm import http1\n"
        "assert 'http.client' not in sys.modules and 'aiohttp' not in sys.modules\n"
        "assert not made\n"
        "assert http1.default_tls_context() is http1.default_tls_context()\n"
        "assert made == [1]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
