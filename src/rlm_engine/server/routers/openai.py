"""OpenAI-compatible routes: an RLM as a chat model for any client that takes a base URL.

``POST /v1/chat/completions`` queues a normal durable run of the caller's tenant (listed
by ``GET /v1/runs``, resumable, in the stats) and answers when it ends, or streams its
progress and answer as chunks. The completion id is ``chatcmpl-<run_id>``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter
from sse_starlette import EventSourceResponse, ServerSentEvent

from rlm_engine.errors import RLMError
from rlm_engine.server.deps import CurrentPrincipal, ServicesDep, SettingsDep
from rlm_engine.server.openai_chunks import ChunkMaker, ProgressNotes
from rlm_engine.server.openai_errors import OpenAIRoute, error_status, rlm_error_response
from rlm_engine.server.openai_models import served
from rlm_engine.server.openai_runs import (
    OutputFormat,
    answer_of,
    completion_id,
    finish_reason,
    submit,
    usage,
)
from rlm_engine.server.openai_schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatRequest,
    Choice,
    ModelList,
    ModelOut,
)
from rlm_engine.server.sse import PING_S
from rlm_engine.service import Services
from rlm_engine.service.principal import Principal

router = APIRouter(tags=["openai"], route_class=OpenAIRoute)

DONE = "[DONE]"


@router.get("/v1/models", summary="The models this server serves (OpenAI's shape)")
async def list_models(who: CurrentPrincipal, settings: SettingsDep) -> ModelList:
    names = served(settings)
    return ModelList(data=[ModelOut(id=n, created=0, owned_by="rlm-engine") for n in names])


@router.post(
    "/v1/chat/completions",
    summary="Answer with an RLM run (OpenAI's chat completions)",
    response_model=None,
    responses={200: {"content": {"text/event-stream": {}}, "model": ChatCompletion}},
)
async def chat_completions(
    body: ChatRequest, who: CurrentPrincipal, services: ServicesDep, settings: SettingsDep
) -> ChatCompletion | EventSourceResponse:
    run, wanted = await submit(body, who, services, settings)
    maker = ChunkMaker(
        id=completion_id(run.run_id),
        created=int(run.created_at),
        model=body.model,
        run_id=run.run_id,
    )
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        chunks = _chunks(services, who, maker, wanted, include_usage=include_usage)
        return EventSourceResponse(
            chunks,
            ping=PING_S,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    ended = await services.runs.wait(who, run.run_id)
    return ChatCompletion(
        id=maker.id,
        created=maker.created,
        model=body.model,
        choices=[
            Choice(
                message=AssistantMessage(content=answer_of(ended, wanted)),
                finish_reason=finish_reason(ended),
            )
        ],
        usage=usage(ended),
        run_id=ended.run_id,
        cost_usd=ended.totals.cost_usd,
    )


async def _chunks(
    services: Services,
    who: Principal,
    maker: ChunkMaker,
    wanted: OutputFormat | None,
    *,
    include_usage: bool,
) -> AsyncIterator[ServerSentEvent]:
    """The run's progress as reasoning, its answer, its usage, then ``[DONE]``. The run
    is durable: a client that goes away stops the stream, never the run."""
    yield ServerSentEvent(data=maker.role())
    yield ServerSentEvent(data=maker.reasoning(f"Queued as run {maker.run_id}.\n"))
    notes = ProgressNotes()
    async for event in services.runs.events(who, maker.run_id):
        text = notes.note(event)
        if text is not None:
            yield ServerSentEvent(data=maker.reasoning(text))
    ended = await asyncio.to_thread(services.runs.get_run, who, maker.run_id)
    try:
        answer = answer_of(ended, wanted)
    except RLMError as exc:
        # The status line is long gone: the error goes in the stream, where OpenAI's
        # clients look for it (and raise it).
        error = json.loads(bytes(rlm_error_response(exc).body))
        error["error"]["status"] = error_status(exc)
        yield ServerSentEvent(data=json.dumps(error))
        yield ServerSentEvent(data=DONE)
        return
    yield ServerSentEvent(data=maker.content(answer))
    yield ServerSentEvent(data=maker.finish(finish_reason(ended)))
    if include_usage:
        yield ServerSentEvent(data=maker.usage(usage(ended)))
    yield ServerSentEvent(data=DONE)
