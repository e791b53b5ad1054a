"""The MCP server on ``rlm serve``, at ``/mcp`` (streamable HTTP).

Every request to ``/mcp`` is authenticated like the rest of the API (the same API keys,
the same 401) and its principal kept in the request's scope, where the tools read it:
an MCP session never outlives the key check of the request that carries each call.
Paths are confined to ``RLM_ALLOWED_PATHS``, else to the directory the server started in.
The SDK's session manager runs inside the app's lifespan. Without the ``mcp`` package
the route is simply absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from rlm_engine.server.errors import AuthenticationError, error_response
from rlm_engine.service import Services
from rlm_engine.service.keys import authenticate
from rlm_engine.service.principal import Principal

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

PATH = "/mcp"
PRINCIPAL_KEY = "rlm.principal"


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def principal_for(services: Services, token: str | None) -> Principal:
    """The caller of a request with ``token`` (as `deps.get_principal` decides)."""
    store = services.store
    if token is None:
        if store.any_api_keys():
            raise AuthenticationError("this server needs an API key")
        return Principal.local()
    who = authenticate(store, token)
    if who is None:
        raise AuthenticationError("the API key is unknown or revoked")
    return who


class Authenticated:
    """The MCP app behind the API's key check."""

    def __init__(self, app: FastAPI, inner: ASGIApp) -> None:
        self.app = app
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = self.app.state.services
        try:
            who = await asyncio.to_thread(principal_for, services, _bearer(scope))
        except AuthenticationError as exc:
            await error_response(exc)(scope, receive, send)
            return
        scope[PRINCIPAL_KEY] = who
        await self.inner(scope, receive, send)


def request_principal(ctx: Context) -> Principal:
    """The principal `Authenticated` stored for the HTTP request carrying this call."""
    request: Any = ctx.request_context.request
    who = None if request is None else request.scope.get(PRINCIPAL_KEY)
    if not isinstance(who, Principal):
        raise AuthenticationError("the MCP request carries no authenticated principal")
    return who


def mount_mcp(app: FastAPI) -> None:
    """Add ``/mcp`` to ``app`` and run the MCP session manager in its lifespan."""
    if importlib.util.find_spec("mcp") is None:
        return
    from mcp.server.transport_security import TransportSecuritySettings

    from rlm_engine.mcp.roots import Roots
    from rlm_engine.mcp.runs import McpRuns
    from rlm_engine.mcp.server import build_server

    settings = app.state.settings
    roots = Roots(operator=tuple(settings.allowed_paths) or (Path(os.getcwd()),))
    holder: dict[str, McpRuns] = {}

    def runs() -> McpRuns:
        # The services exist once the lifespan has opened them, not when the app is built.
        if "runs" not in holder:
            holder["runs"] = McpRuns(app.state.services, roots, isolation="strict")
        return holder["runs"]

    server = build_server(runs, request_principal)
    # Requests are authenticated by API key like the rest of the API, which checks no
    # Host header either; a keyless server binds loopback only.
    inner = server.streamable_http_app(
        streamable_http_path=PATH,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    app.router.routes.append(Route(PATH, endpoint=Authenticated(app, inner)))
    outer = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(started: FastAPI) -> AsyncGenerator[Any]:
        async with outer(started) as state, server.session_manager.run():
            yield state

    app.router.lifespan_context = lifespan
