"""A run's events as SSE, from any sequence number."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse

from rlm_engine.server.deps import CurrentPrincipal, ServicesDep
from rlm_engine.server.sse import MAX_SEQ, event_stream, resume_after

router = APIRouter(tags=["runs"])

SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`id:` stored sequence number, `event:` type, `data:` the event JSON",
        "content": {"text/event-stream": {}},
    }
}


@router.get(
    "/v1/runs/{run_id}/events",
    summary="Stream a run's events (SSE)",
    response_class=EventSourceResponse,
    responses=SSE_RESPONSE,
)
async def run_events(
    run_id: str,
    who: CurrentPrincipal,
    services: ServicesDep,
    after: Annotated[
        int | None, Query(ge=-1, le=MAX_SEQ, description="stream events after this sequence number")
    ] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="resume after this id")
    ] = None,
) -> EventSourceResponse:
    await asyncio.to_thread(services.runs.get_run, who, run_id)  # 404 before streaming
    after_seq = resume_after(last_event_id, after)
    return event_stream(services.runs.event_batches(who, run_id, after_seq=after_seq))
