"""Usage: tokens and cost by model, by day and by session."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query

from rlm_engine.server.deps import CurrentPrincipal, ServicesDep
from rlm_engine.server.schemas import StatsOut
from rlm_engine.service.stats import usage_stats

router = APIRouter(tags=["stats"])


@router.get("/v1/stats", summary="Usage of the caller's tenant")
async def get_stats(
    who: CurrentPrincipal,
    services: ServicesDep,
    since: Annotated[
        float | None, Query(ge=0, description="only calls started since (Unix seconds)")
    ] = None,
) -> StatsOut:
    stats = await asyncio.to_thread(usage_stats, services.store, who, since=since)
    return StatsOut.of(stats)
