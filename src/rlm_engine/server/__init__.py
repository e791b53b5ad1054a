"""The HTTP API (the ``server`` extra): `create_app(settings)` builds it; ``rlm serve`` runs it.

There is no module-level app: building one opens nothing, and the services (store, run
service, queue) are opened by the app's lifespan when a server starts it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from rlm_engine import __version__
from rlm_engine.server import errors
from rlm_engine.server.body_limit import BodyLimit
from rlm_engine.server.deps import get_principal
from rlm_engine.server.lifespan import lifespan_for
from rlm_engine.server.mcp_app import mount_mcp
from rlm_engine.server.openai_errors import OpenAIBodyLimit
from rlm_engine.server.routers import details, events, health, openai, runs, seed, sessions, stats
from rlm_engine.server.ui import mount_ui
from rlm_engine.service import Services
from rlm_engine.service.limits import ServiceLimits
from rlm_engine.settings import Settings

DESCRIPTION = """\
Recursive Language Models over HTTP: sessions hold a large context and a memory, runs
answer questions over them and stream their events live, every run has an inspectable
call tree with tokens and cost.

Send `Authorization: Bearer <secret>` (`rlm keys create --tenant NAME` makes one) once
the server has any key; without keys it serves one local tenant on loopback only.
"""


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    """The API on ``services`` (left open on shutdown), else on services the app's
    lifespan opens from ``settings`` and closes."""
    limits = services.limits if services is not None else ServiceLimits.from_settings(settings)
    app = FastAPI(
        title="rlm-engine",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan_for(settings, services),
    )
    app.state.settings = settings
    app.state.limits = limits
    if services is not None:
        app.state.services = services
    errors.install(app)
    app.add_middleware(BodyLimit, max_context_bytes=limits.max_context_bytes)
    # Outside `BodyLimit`: the OpenAI routes refuse an oversized body in OpenAI's shape.
    app.add_middleware(OpenAIBodyLimit, max_context_bytes=limits.max_context_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=["Location", "Retry-After"],
        )
    app.include_router(health.router)
    # Every /api and /v1 route needs the caller's principal, attached here so that a new
    # route cannot skip authentication; handlers take it again to scope their call.
    keyed = APIRouter(dependencies=[Depends(get_principal)])
    for module in (seed, sessions, runs, details, events, stats, openai):
        keyed.include_router(module.router)
    app.include_router(keyed)
    mount_mcp(app)
    # Last: the UI's catch-all route answers only what no route above does.
    mount_ui(app)
    return app


def app_from_env() -> FastAPI:
    """The app of the environment's settings: uvicorn's factory for several workers."""
    return create_app(Settings.from_env())
