"""Typed errors become HTTP answers: one status per error class (nearest in the MRO), one
body shape, and the headers a client acts on (Retry-After, WWW-Authenticate)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request

from rlm_engine.errors import ConfigurationError, ProviderError, RLMError, UnknownProviderError
from rlm_engine.server import errors
from rlm_engine.server.body_limit import BodyLimit
from rlm_engine.server.errors import AuthenticationError, status_of
from rlm_engine.service.errors import (
    ContextTooLargeError,
    PathNotAllowedError,
    RunActiveError,
    TenantLimitError,
)
from rlm_engine.store.errors import (
    JournalConflictError,
    RunNotFoundError,
    RunNotResumableError,
    SessionNotFoundError,
    StoreUnavailableError,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RunNotFoundError("run_x"), 404),
        (SessionNotFoundError("ses_x"), 404),
        (JournalConflictError("taken"), 409),
        (RunNotResumableError("done"), 409),
        (ConfigurationError("bad"), 422),
        (UnknownProviderError("nope/model"), 422),  # a subclass: found along the MRO
        (TenantLimitError("busy", limit="concurrent_runs", retry_after_s=2.5), 429),
        (ContextTooLargeError("big", max_bytes=10), 413),
        (PathNotAllowedError("/etc"), 403),
        (ProviderError("down", kind="server", provider="openai"), 502),
        (StoreUnavailableError("db down"), 503),
        (AuthenticationError("who?"), 401),
        (RunActiveError("run_x"), 409),
        (RLMError("on purpose"), 400),
        (ValueError("a bug"), 500),
    ],
)
def test_status_of_each_error(error: BaseException, status: int) -> None:
    assert status_of(error) == status


def _raising_app(exc: Exception) -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    @app.get("/typed/{n}")
    async def typed(n: int) -> dict[str, int]:
        return {"n": n}

    return app


async def _get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


async def test_error_body_has_type_message_and_hint() -> None:
    reply = await _get(_raising_app(RunNotFoundError("run_123")), "/boom")
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert error["type"] == "RunNotFoundError"
    assert "run_123" in error["message"]
    assert set(error) >= {"type", "message", "hint"}


@pytest.mark.parametrize(
    ("error", "message", "hint"),
    [
        (RunNotFoundError("run_123"), "no run with id 'run_123'", "GET /v1/runs"),
        (SessionNotFoundError("ses_1"), "no session named 'ses_1'", "GET /v1/sessions"),
        (StoreUnavailableError("db down"), "db down", "try again"),
    ],
)
async def test_messages_and_hints_speak_to_an_api_client_not_a_terminal(
    error: RLMError, message: str, hint: str
) -> None:
    # The errors' own texts suggest `rlm runs list` or checking RLM_HOME: things only the
    # server's operator can do.
    body = (await _get(_raising_app(error), "/boom")).json()["error"]
    assert body["message"] == message
    assert hint in body["hint"]
    assert "rlm " not in body["message"] + body["hint"]
    assert "RLM_HOME" not in body["hint"]


async def test_tenant_limit_sends_retry_after_in_whole_seconds() -> None:
    exc = TenantLimitError("too many runs", limit="concurrent_runs", retry_after_s=2.2)
    reply = await _get(_raising_app(exc), "/boom")
    assert reply.status_code == 429
    assert reply.headers["Retry-After"] == "3"
    assert reply.json()["error"]["hint"]


async def test_authentication_error_asks_for_a_bearer_token() -> None:
    reply = await _get(_raising_app(AuthenticationError("no key")), "/boom")
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == "Bearer"


async def test_validation_and_routing_errors_share_the_body_shape() -> None:
    app = _raising_app(RLMError("unused"))
    invalid = await _get(app, "/typed/not-a-number")
    assert invalid.status_code == 422
    assert invalid.json()["error"]["type"] == "ValidationError"
    assert "n" in invalid.json()["error"]["message"]
    missing = await _get(app, "/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "HTTPError"


def _echo_app(max_context_bytes: int, seen: list[int]) -> BodyLimit:
    app = FastAPI()
    errors.install(app)

    @app.post("/count")
    async def count(request: Request) -> dict[str, int]:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
        seen.append(total)
        return {"bytes": total}

    return BodyLimit(app, max_context_bytes=max_context_bytes)


async def test_declared_oversized_body_is_refused_before_it_is_read() -> None:
    seen: list[int] = []
    app = _echo_app(10, seen)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        small = await client.post("/count", content=b"x" * 100)
        big = await client.post("/count", content=b"x" * (2 * 1024 * 1024))
    assert small.status_code == 200 and small.json() == {"bytes": 100}
    assert big.status_code == 413
    assert big.json()["error"]["type"] == "ContextTooLargeError"
    assert seen == [100]  # the handler never ran for the big one


async def test_undeclared_body_stops_at_the_limit() -> None:
    seen: list[int] = []
    app = _echo_app(10, seen)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        for _ in range(64):
            yield b"y" * 65536

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        reply = await client.post("/count", content=chunks())
    assert reply.status_code == 413
    assert seen == []
