"""The source design's original surface, as written there: sessions, a blocking execute,
a streamed execute, a run's tree and usage. The versioned `/v1` routes do the same
things with more control; these stay for the clients written against the design."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from sse_starlette import EventSourceResponse

from rlm_engine.server.deps import CurrentPrincipal, ServicesDep, SettingsDep
from rlm_engine.server.routers.events import SSE_RESPONSE
from rlm_engine.server.schemas import (
    RunOptions,
    SeedExecute,
    SeedExecution,
    SeedSession,
    SessionOut,
    StatsOut,
    TreeOut,
    usage_of,
)
from rlm_engine.server.specs import spec_for
from rlm_engine.server.sse import event_stream
from rlm_engine.service.principal import Principal
from rlm_engine.service.stats import usage_stats

router = APIRouter(prefix="/api", tags=["seed"])


@router.post("/sessions", summary="Create a session with a text context")
async def create_session(
    body: SeedSession, who: CurrentPrincipal, services: ServicesDep
) -> SessionOut:
    info = await asyncio.to_thread(services.sessions.create_text, who, body.name, body.context)
    return SessionOut.of(info)


async def _submit(
    body: SeedExecute, who: Principal, services: ServicesDep, settings: SettingsDep
) -> str:
    """Queue the run like `POST /v1/runs`: the tenant's limits apply, and a run whose
    server dies is resumed by the next one."""
    info = await asyncio.to_thread(services.sessions.get, who, body.session_id)
    spec = spec_for(RunOptions(model=body.model), settings)
    run = await services.queue.submit(
        who, body.user_query, spec, session=info.id, context_key=info.context_key
    )
    return run.run_id


@router.post("/execute", summary="Run a query over a session and wait for its answer")
async def execute(
    body: SeedExecute, who: CurrentPrincipal, services: ServicesDep, settings: SettingsDep
) -> SeedExecution:
    run_id = await _submit(body, who, services, settings)
    # A failed or stopped run is still an answer here: its record says how it ended.
    run = await services.runs.wait(who, run_id)
    return SeedExecution(
        execution_id=run.run_id,
        answer=run.answer,
        status=run.status,
        stop_reason=run.stop_reason,
        usage=usage_of(run),
        cost_usd=run.totals.cost_usd,
    )


@router.post(
    "/execute/stream",
    summary="Run a query over a session, streaming its events (SSE)",
    response_class=EventSourceResponse,
    responses=SSE_RESPONSE,
)
async def execute_stream(
    body: SeedExecute, who: CurrentPrincipal, services: ServicesDep, settings: SettingsDep
) -> EventSourceResponse:
    run_id = await _submit(body, who, services, settings)
    return event_stream(services.runs.event_batches(who, run_id))


@router.get("/executions/{execution_id}/tree", summary="A run's call tree")
async def execution_tree(
    execution_id: str, who: CurrentPrincipal, services: ServicesDep
) -> TreeOut:
    return TreeOut.of(await asyncio.to_thread(services.runs.run_tree, who, execution_id))


@router.get("/stats", summary="Usage of the caller's tenant")
async def stats(who: CurrentPrincipal, services: ServicesDep) -> StatsOut:
    return StatsOut.of(await asyncio.to_thread(usage_stats, services.store, who))
