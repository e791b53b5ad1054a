"""Errors of the OpenAI-compatible routes in OpenAI's shape and status codes.

OpenAI clients read ``{"error": {"message", "type", "param", "code"}}`` and map the
status to their own exceptions (401 authentication, 404 not found, 413, 429 rate limit
with ``Retry-After``). Only the routes of `routers.openai` answer so: their route class
turns every error raised while handling a request (authentication, validation, the
service's typed errors) into this shape, and `OpenAIBodyLimit` does the same for a body
refused before routing. The rest of the API keeps its own error body.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from rlm_engine.errors import ConfigurationError, RLMError, hint_for
from rlm_engine.server.body_limit import ENVELOPE_BYTES
from rlm_engine.server.errors import AuthenticationError, status_of
from rlm_engine.service.errors import ContextTooLargeError, TenantLimitError
from rlm_engine.store.records import Run

OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")


class ModelNotFoundError(RLMError):
    """The request names a model this server does not serve."""

    hint = "use rlm/<provider>/<model> (e.g. rlm/openai/gpt-5) or a name GET /v1/models lists"


class OutputSchemaError(RLMError):
    """The run finished, but its answer does not match the requested JSON schema."""


class RunNotAnsweredError(RLMError):
    """The run ended without an answer (failed, cancelled or interrupted)."""

    def __init__(self, run: Run) -> None:
        super().__init__(
            f"run {run.run_id} ended {run.status} without an answer: "
            f"{run.detail or run.stop_reason}",
            hint=f"see GET /v1/runs/{run.run_id}; POST /v1/runs/{run.run_id}/resume continues it",
        )
        self.run_id = run.run_id


# OpenAI's error `type` and `code` for each status this API answers with.
_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    422: ("invalid_request_error", None),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def openai_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    kind, default_code = _KINDS.get(
        status, ("server_error" if status >= 500 else "api_error", None)
    )
    body = {
        "error": {"message": message, "type": kind, "param": param, "code": code or default_code}
    }
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def error_status(exc: RLMError) -> int:
    """The status of ``exc`` on these routes: the API's table, except that a request
    the server cannot run as given (a bad setting) is OpenAI's 400."""
    if isinstance(exc, ModelNotFoundError):
        return 404
    if isinstance(exc, OutputSchemaError):
        return 502
    if isinstance(exc, RunNotAnsweredError):
        return 500
    status = status_of(exc)
    return 400 if isinstance(exc, ConfigurationError) or status == 422 else status


def rlm_error_response(exc: RLMError) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, TenantLimitError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    if isinstance(exc, ContextTooLargeError):
        headers["Connection"] = "close"
    hint = hint_for(exc)
    message = f"{exc} ({hint})" if hint else str(exc)
    code = "model_not_found" if isinstance(exc, ModelNotFoundError) else None
    return openai_error(error_status(exc), message, code=code, headers=headers)


def validation_response(exc: RequestValidationError) -> JSONResponse:
    errors: list[dict[str, Any]] = list(exc.errors())
    first: dict[str, Any] = errors[0] if errors else {}
    # The body's own location (`body.messages.0`) as OpenAI names a parameter.
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid request"))
    return openai_error(400, f"{param}: {message}" if param else message, param=param)


class OpenAIRoute(APIRoute):
    """A route whose errors, whatever raised them, answer in OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handle(request)
            except RLMError as exc:
                return rlm_error_response(exc)
            except RequestValidationError as exc:
                return validation_response(exc)
            except StarletteHTTPException as exc:
                return openai_error(exc.status_code, str(exc.detail), headers=exc.headers)

        return route


class OpenAIBodyLimit:
    """A body declared larger than the server reads, refused in OpenAI's shape on the
    OpenAI routes (elsewhere `BodyLimit` answers; a body sent without a length is
    counted there, and its error reaches the route)."""

    def __init__(self, app: ASGIApp, *, max_context_bytes: int) -> None:
        self.app = app
        self.max_context_bytes = max_context_bytes
        self.max_body = max_context_bytes + ENVELOPE_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")) in OPENAI_PATHS:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body:
                exc = ContextTooLargeError(
                    f"the request body is larger than the limit of {self.max_context_bytes:,} "
                    "bytes",
                    max_bytes=self.max_context_bytes,
                )
                await rlm_error_response(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
