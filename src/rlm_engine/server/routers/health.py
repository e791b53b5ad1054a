"""Liveness and readiness; no key needed, so a load balancer can probe them."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from rlm_engine.server.deps import ServicesDep
from rlm_engine.server.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> Health:
    return Health()


@router.get("/readyz", summary="The store answers")
async def readyz(services: ServicesDep) -> Health:
    # Any cheap read: it fails (503, via the store's own error) while the database is down.
    await asyncio.to_thread(services.store.any_api_keys)
    return Health()
