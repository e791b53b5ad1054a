"""Typed errors to HTTP answers: one table, looked up along the error's class hierarchy.

Every error answer has the same body, ``{"error": {"type", "message", "hint"}}``, whether
it comes from the service, from request validation or from routing, so a client reads one
shape. An error of another tenant's resource is the same not-found as a missing one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rlm_engine.errors import ConfigurationError, ProviderError, RLMError, hint_for
from rlm_engine.service.errors import (
    ContextTooLargeError,
    PathNotAllowedError,
    RunActiveError,
    RunCancelledError,
    TenantLimitError,
)
from rlm_engine.store.errors import (
    ConcurrencyError,
    JournalConflictError,
    NotFoundError,
    RunNotResumableError,
    StoreUnavailableError,
)


class AuthenticationError(RLMError):
    """The request carries no valid API key."""

    hint = "send `Authorization: Bearer <secret>`; `rlm keys create --tenant NAME` makes one"


class UnsupportedMediaError(RLMError):
    """The request body has a content type this endpoint does not read."""


STATUS: Mapping[type[BaseException], int] = {
    AuthenticationError: 401,
    PathNotAllowedError: 403,
    NotFoundError: 404,  # RunNotFoundError, SessionNotFoundError: also another tenant's
    JournalConflictError: 409,
    RunNotResumableError: 409,
    ConcurrencyError: 409,
    RunActiveError: 409,
    RunCancelledError: 409,
    ContextTooLargeError: 413,
    UnsupportedMediaError: 415,
    ConfigurationError: 422,
    TenantLimitError: 429,
    ProviderError: 502,
    StoreUnavailableError: 503,
    # Raised on purpose with a hint, so about the request rather than a bug.
    RLMError: 400,
}


def status_of(exc: BaseException) -> int:
    """The status of the nearest class of ``exc`` in `STATUS` (500 for none)."""
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500


# What a caller of the API can do; the errors' own hints name CLI commands and settings of
# the machine the server runs on, which an API client can neither run nor change.
SERVER_HINTS: Mapping[str, str] = {
    "RunNotFoundError": "list your runs with GET /v1/runs",
    "SessionNotFoundError": "list your sessions with GET /v1/sessions",
    "NotFoundError": "check the id",
    "StoreUnavailableError": "the server's store does not answer; try again shortly",
    "StoreWriteError": "the server's store could not write; try again later, or tell its "
    "operator (the run is kept and can be resumed with POST /v1/runs/{id}/resume)",
    "StoreError": "the server's store failed; try again, or tell its operator",
    "ContextError": "check the session's context (GET /v1/sessions/{id})",
}


def server_hint(exc: RLMError) -> str:
    for cls in type(exc).__mro__:
        hint = SERVER_HINTS.get(cls.__name__)
        if hint is not None:
            return hint
    return hint_for(exc)


def error_body(type_name: str, message: str, hint: str = "", **extra: Any) -> dict[str, Any]:
    return {"error": {"type": type_name, "message": message, "hint": hint, **extra}}


def error_response(exc: RLMError) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, ContextTooLargeError):
        # The client may still be sending the body we refuse: closing the connection stops
        # the server reading (and discarding) the rest of it.
        headers["Connection"] = "close"
    if isinstance(exc, TenantLimitError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return JSONResponse(
        error_body(type(exc).__name__, str(exc), server_hint(exc)),
        status_code=status_of(exc),
        headers=headers,
    )


async def _rlm_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RLMError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only where and what: echoing `input` back could return a whole uploaded context.
    problems: list[dict[str, Any]] = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": e.get("type"),
        }
        for e in exc.errors()
    ]
    first: dict[str, Any] = problems[0] if problems else {}
    loc: list[Any] = first.get("loc", [])
    where = ".".join(str(p) for p in loc)
    message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
    body = error_body(
        "ValidationError", message, "fix the request as `detail` says", detail=problems
    )
    return JSONResponse(body, status_code=422)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    body = error_body("HTTPError", str(exc.detail))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RLMError, _rlm_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
