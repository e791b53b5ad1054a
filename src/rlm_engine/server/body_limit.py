"""Refusing an oversized request body before it is read (ASGI middleware).

The limit is a tenant's largest context plus room for the envelope around it (JSON
quoting, multipart headers). A declared ``Content-Length`` above it is answered 413 at
once, without reading a byte; a body sent without one (chunked) is counted as it is
received and stops at the limit. The service checks the context's own size exactly.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rlm_engine.server.errors import error_response
from rlm_engine.service.errors import ContextTooLargeError

ENVELOPE_BYTES = 1024 * 1024


def _too_large(max_bytes: int) -> ContextTooLargeError:
    return ContextTooLargeError(
        f"the request body is larger than the limit of {max_bytes:,} bytes", max_bytes=max_bytes
    )


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_context_bytes: int) -> None:
        self.app = app
        self.max_context_bytes = max_context_bytes
        self.max_body = max_context_bytes + ENVELOPE_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            response: JSONResponse = error_response(_too_large(self.max_context_bytes))
            await response(scope, receive, send)
            return
        await self.app(scope, self._counted(receive), send)

    def _counted(self, receive: Receive) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _too_large(self.max_context_bytes)
            return message

        return counted


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
