"""Runs: submitted to the durable queue, then read, cancelled, resumed, exported."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from rlm_engine.server.deps import CurrentPrincipal, ServicesDep, SettingsDep
from rlm_engine.server.schemas import (
    ExportFormat,
    RunAccepted,
    RunCreate,
    RunOut,
    RunPageOut,
    RunResume,
    TreeOut,
    run_links,
)
from rlm_engine.server.specs import spec_for
from rlm_engine.store.records import RunStatus

router = APIRouter(prefix="/v1/runs", tags=["runs"])

_EXPORT_MEDIA: dict[str, str] = {
    "ipynb": "application/x-ipynb+json",
    "jsonl": "application/x-ndjson",
    "md": "text/markdown; charset=utf-8",
}
_EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {media: {} for media in _EXPORT_MEDIA.values()}}
}
# A run given its context inline keeps it as a session of this name, so a later run can
# ask over the same text by session id instead of sending it again.
INLINE_CONTEXT_SESSION = "run context"


@router.post("", status_code=202, summary="Submit a run (executed by the queue)")
async def create_run(
    body: RunCreate,
    response: Response,
    who: CurrentPrincipal,
    services: ServicesDep,
    settings: SettingsDep,
) -> RunAccepted:
    spec = spec_for(body, settings)  # before any write: a bad request leaves nothing behind
    session_id = body.session_id
    context_key: str | None = None
    if body.context is not None:
        info = await asyncio.to_thread(
            services.sessions.create_text, who, INLINE_CONTEXT_SESSION, body.context
        )
        session_id, context_key = info.id, info.context_key
    elif session_id is not None:
        info = await asyncio.to_thread(services.sessions.get, who, session_id)
        context_key = info.context_key
    run = await services.queue.submit(
        who, body.question, spec, session=session_id, context_key=context_key
    )
    response.headers["Location"] = f"/v1/runs/{run.run_id}"
    return RunAccepted(run_id=run.run_id, status=run.status, links=run_links(run.run_id))


@router.get("", summary="The tenant's runs, newest first, a page at a time")
async def list_runs(
    who: CurrentPrincipal,
    services: ServicesDep,
    status: RunStatus | None = None,
    session_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> RunPageOut:
    page = await asyncio.to_thread(
        services.runs.list_runs, who, status=status, session=session_id, limit=limit, cursor=cursor
    )
    return RunPageOut(runs=[RunOut.of(r) for r in page.runs], next_cursor=page.next_cursor)


@router.get("/{run_id}", summary="One run")
async def get_run(run_id: str, who: CurrentPrincipal, services: ServicesDep) -> RunOut:
    return RunOut.of(await asyncio.to_thread(services.runs.get_run, who, run_id))


@router.post("/{run_id}/cancel", summary="Cancel a run (cooperative; recorded as cancelled)")
async def cancel_run(run_id: str, who: CurrentPrincipal, services: ServicesDep) -> RunOut:
    return RunOut.of(await services.runs.cancel(who, run_id))


@router.post("/{run_id}/resume", status_code=202, summary="Resume a run from its journal")
async def resume_run(
    run_id: str,
    who: CurrentPrincipal,
    services: ServicesDep,
    body: Annotated[RunResume | None, Body()] = None,
) -> RunAccepted:
    options = body or RunResume()
    handle = await services.runs.resume(who, run_id, accept_divergence=options.accept_divergence)
    run = await asyncio.to_thread(services.runs.get_run, who, handle.run_id)
    return RunAccepted(run_id=run.run_id, status=run.status, links=run_links(run.run_id))


@router.delete("/{run_id}", status_code=204, summary="Delete a finished run and its journal")
async def delete_run(run_id: str, who: CurrentPrincipal, services: ServicesDep) -> Response:
    await asyncio.to_thread(services.runs.delete_run, who, run_id)
    return Response(status_code=204)


@router.get(
    "/{run_id}/export",
    summary="A run as a notebook, JSON lines or Markdown",
    response_class=Response,
    responses=_EXPORT_RESPONSES,
)
async def export_run(
    run_id: str,
    who: CurrentPrincipal,
    services: ServicesDep,
    format: ExportFormat = "ipynb",
) -> Response:
    data = await asyncio.to_thread(services.runs.export, who, run_id, format)
    return Response(
        data,
        media_type=_EXPORT_MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{run_id}.{format}"'},
    )


@router.get("/{run_id}/tree", summary="A run's call tree, with cost and tokens per node")
async def run_tree(
    run_id: str,
    who: CurrentPrincipal,
    services: ServicesDep,
    outputs: Annotated[
        bool, Query(description="false: cells without their output (read one with /cells/{id})")
    ] = True,
) -> TreeOut:
    tree = await asyncio.to_thread(services.runs.run_tree, who, run_id)
    return TreeOut.of(tree, outputs=outputs)
