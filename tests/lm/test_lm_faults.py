"""Provider faults in the middle of a reply, through the direct transport and the SDK path,
against a loopback server that misbehaves on purpose."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from rlm_engine.errors import ConfigurationError, ProviderError
from rlm_engine.lm.openai import OpenAIChatModel, Transport
from rlm_engine.lm.registry import resolve_model
from rlm_engine.lm.retry import RetryingModel, RetryPolicy
from rlm_engine.types import Message

MESSAGES = [Message(role="user", content="hi")]
REPLY = {
    "id": "c1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def _headers(length: int) -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed proxy would."""
    sock: socket.socket = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultyServer:
    """Answers request ``n`` (from 0) with ``fault(n)``: ``reset`` (half a body, then a TCP
    reset), ``stall`` (headers and a few bytes, then silence) or ``ok``."""

    def __init__(self, fault: Callable[[int], str]) -> None:
        self.fault = fault
        self.requests = 0
        self._stalled: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await _read_request(reader)
                fault = self.fault(self.requests)
                self.requests += 1
                body = json.dumps(REPLY).encode()
                if fault == "ok":
                    writer.write(_headers(len(body)) + body)
                    await writer.drain()
                    continue
                writer.write(_headers(len(body)) + body[: len(body) // 2])
                await writer.drain()
                if fault == "reset":
                    await asyncio.sleep(0.05)
                    _reset(writer)
                    return
                self._stalled.append(writer)
                await asyncio.sleep(3600)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


Start = Callable[[Callable[[int], str]], Awaitable[tuple[str, FaultyServer]]]


@pytest.fixture
async def serve() -> AsyncIterator[Start]:
    """Start a `FaultyServer` on loopback: its URL and the server (to count requests)."""
    servers: list[asyncio.Server] = []
    handlers: list[asyncio.Task[None]] = []

    async def start(fault: Callable[[int], str]) -> tuple[str, FaultyServer]:
        faulty = FaultyServer(fault)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                handlers.append(task)
            await faulty.handle(reader, writer)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1", faulty

    yield start
    for server in servers:
        server.close()
    for task in handlers:
        task.cancel()


def _model(url: str, transport: Transport, *, read_timeout_s: float = 30.0) -> OpenAIChatModel:
    return OpenAIChatModel(
        "m",
        api_key="k",
        provider="sim",
        base_url=url,
        transport=transport,
        read_timeout_s=read_timeout_s,
        max_tokens_param="max_tokens",
    )


TRANSPORTS: list[Transport] = ["direct", "sdk"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_reset_in_the_middle_of_the_body_is_a_retryable_connection_error(
    serve: Start, transport: Transport
) -> None:
    url, _ = await serve(lambda n: "reset")
    model = _model(url, transport)
    try:
        with pytest.raises(ProviderError) as caught:
            await model.complete(MESSAGES)
    finally:
        await model.aclose()
    assert caught.value.kind == "connection"
    assert caught.value.retryable


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_reset_mid_body_is_retried_and_the_next_attempt_answers(
    serve: Start, transport: Transport
) -> None:
    url, server = await serve(lambda n: "reset" if n == 0 else "ok")
    model = _model(url, transport)

    async def no_wait(_: float) -> None:
        return None

    retrying = RetryingModel(model, policy=RetryPolicy(max_attempts=3), sleep=no_wait)
    try:
        completion = await retrying.complete(MESSAGES)
    finally:
        await model.aclose()
    assert completion.text == "ok"
    assert server.requests == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_server_that_stops_sending_fails_with_a_timeout_after_the_read_timeout(
    serve: Start, transport: Transport
) -> None:
    url, _ = await serve(lambda n: "stall")
    model = _model(url, transport, read_timeout_s=0.5)
    try:
        with pytest.raises(ProviderError) as caught:
            await asyncio.wait_for(model.complete(MESSAGES), timeout=60)
    finally:
        await model.aclose()
    assert caught.value.kind == "timeout"
    assert caught.value.retryable


def test_rlm_request_timeout_sets_the_read_timeout_of_openai_compatible_models() -> None:
    env = {"RLM_REQUEST_TIMEOUT": "0.5", "RLM_SIM_URL": "http://127.0.0.1:9/v1"}
    model = resolve_model("sim/m", env=env)
    assert isinstance(model, OpenAIChatModel)
    assert model.read_timeout_s == 0.5
    default = resolve_model("sim/m", env={"RLM_SIM_URL": "http://127.0.0.1:9/v1"})
    assert isinstance(default, OpenAIChatModel)
    assert default.read_timeout_s == 120.0


@pytest.mark.parametrize("raw", ["0", "-1", "soon"])
def test_a_bad_rlm_request_timeout_is_a_configuration_error(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="RLM_REQUEST_TIMEOUT"):
        resolve_model("sim/m", env={"RLM_REQUEST_TIMEOUT": raw})
