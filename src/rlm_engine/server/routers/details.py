"""What a viewer opens one at a time: a node's prompt and reply, a window of a cell's
output, and an offline replay of a run."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query

from rlm_engine.server.deps import CurrentPrincipal, ServicesDep
from rlm_engine.server.detail_schemas import CellDetailOut, NodeDetailOut, ReplayOut
from rlm_engine.service.details import DEFAULT_MAX_CHARS

router = APIRouter(prefix="/v1/runs", tags=["runs"])

# Large enough for any prompt or output a viewer shows whole; a bound, so one request
# cannot ask a server to build an unbounded body.
_MOST_CHARS = 50_000_000


@router.get("/{run_id}/nodes/{node_id:path}", summary="A node's journaled request and response")
async def node_detail(
    run_id: str,
    node_id: str,
    who: CurrentPrincipal,
    services: ServicesDep,
    max_chars: Annotated[int, Query(ge=1, le=_MOST_CHARS)] = DEFAULT_MAX_CHARS,
) -> NodeDetailOut:
    detail = await asyncio.to_thread(
        services.runs.node_detail, who, run_id, node_id, max_chars=max_chars
    )
    return NodeDetailOut.of(detail)


@router.get("/{run_id}/cells/{artifact_id:path}", summary="A window of one cell's output")
async def cell_detail(
    run_id: str,
    artifact_id: str,
    who: CurrentPrincipal,
    services: ServicesDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=_MOST_CHARS)] = DEFAULT_MAX_CHARS,
) -> CellDetailOut:
    detail = await asyncio.to_thread(
        services.runs.cell_detail, who, run_id, artifact_id, offset=offset, limit=limit
    )
    return CellDetailOut.of(detail)


@router.post("/{run_id}/replay", summary="Re-run a run offline from its journal")
async def replay_run(run_id: str, who: CurrentPrincipal, services: ServicesDep) -> ReplayOut:
    return ReplayOut.of(await services.runs.replay_check(who, run_id))
