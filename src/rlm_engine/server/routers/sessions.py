"""Sessions (a context pinned once, asked many times) and their memory."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from rlm_engine.errors import ConfigurationError
from rlm_engine.server.deps import CurrentPrincipal, LimitsDep, ServicesDep
from rlm_engine.server.errors import UnsupportedMediaError
from rlm_engine.server.schemas import (
    MemoryItemOut,
    MemoryList,
    MemoryValue,
    SessionList,
    SessionOut,
    SessionPath,
    SessionText,
)
from rlm_engine.server.uploads import FormReader
from rlm_engine.service.principal import Principal
from rlm_engine.service.sessions import SessionInfo, SessionService
from rlm_engine.store.errors import NotFoundError

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

# A JSON body is parsed whole, so it is read into memory: big contexts go as uploads.
_JSON_SCHEMA = {"oneOf": [SessionText.model_json_schema(), SessionPath.model_json_schema()]}
_CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _JSON_SCHEMA},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "file": {"type": "string", "format": "binary"},
                    },
                    "required": ["file"],
                },
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


class MemoryKeyNotFoundError(NotFoundError):
    """The session's memory has no such key."""

    hint = "GET /v1/sessions/{id}/memory lists the keys"


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"the body is not JSON: {exc}") from exc


def _from_json(sessions: SessionService, who: Principal, data: Any) -> SessionInfo:
    if isinstance(data, dict) and "path" in data:
        try:
            by_path = SessionPath.model_validate(data)
        except ValidationError as exc:
            raise ConfigurationError(_first_problem(exc)) from exc
        return sessions.create_path(who, by_path.name, by_path.path)
    try:
        text = SessionText.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(_first_problem(exc)) from exc
    return sessions.create_text(who, text.name, text.context)


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]


@router.post(
    "",
    status_code=201,
    summary="Create a session from text, an upload or a server-side path",
    description=(
        'JSON `{"name", "context"}` (text) or `{"name", "path"}` (under RLM_ALLOWED_PATHS); '
        "multipart/form-data with a `file` field (and `name` before it), streamed to the "
        "store; or a raw application/octet-stream body with `?name=` and `?filename=`."
    ),
    openapi_extra=_CREATE_BODY,
)
async def create_session(
    request: Request,
    who: CurrentPrincipal,
    services: ServicesDep,
    limits: LimitsDep,
    name: Annotated[str | None, Query(max_length=200, description="raw bodies only")] = None,
    filename: Annotated[str | None, Query(max_length=255, description="raw bodies only")] = None,
) -> SessionOut:
    sessions = services.sessions
    media = _media_type(request)
    if media == "application/json":
        data = await _json_body(request)
        info = await asyncio.to_thread(_from_json, sessions, who, data)
    elif media == "multipart/form-data":
        form = FormReader(request.stream().__aiter__(), request.headers["content-type"])
        upload_name = await form.file_part()
        label = form.fields.get("name") or upload_name or "upload"
        info = await sessions.create_stream(
            who,
            label,
            form.file_chunks(),
            filename=upload_name,
            max_bytes=limits.max_context_bytes,
        )
    elif media == "application/octet-stream":
        info = await sessions.create_stream(
            who,
            name or filename or "upload",
            _nonempty(request.stream()),
            filename=filename,
            max_bytes=limits.max_context_bytes,
        )
    else:
        raise UnsupportedMediaError(
            f"cannot create a session from {media or 'a body without a content type'}",
            hint="send application/json, multipart/form-data or application/octet-stream",
        )
    return SessionOut.of(info)


async def _nonempty(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        if chunk:
            yield chunk


@router.get("", summary="The tenant's sessions, most recently used first")
async def list_sessions(
    who: CurrentPrincipal,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
) -> SessionList:
    infos = await asyncio.to_thread(services.sessions.list, who, limit=limit)
    return SessionList(sessions=[SessionOut.of(i) for i in infos])


@router.get("/{session_id}", summary="One session")
async def get_session(session_id: str, who: CurrentPrincipal, services: ServicesDep) -> SessionOut:
    return SessionOut.of(await asyncio.to_thread(services.sessions.get, who, session_id))


@router.delete("/{session_id}", status_code=204, summary="Delete a session and its memory")
async def delete_session(session_id: str, who: CurrentPrincipal, services: ServicesDep) -> Response:
    await asyncio.to_thread(services.sessions.delete, who, session_id)
    return Response(status_code=204)


@router.get("/{session_id}/memory", summary="A session's memory")
async def list_memory(session_id: str, who: CurrentPrincipal, services: ServicesDep) -> MemoryList:
    items = await asyncio.to_thread(services.sessions.memory_list, who, session_id)
    return MemoryList(items=[MemoryItemOut.of(i) for i in items])


@router.get("/{session_id}/memory/{key}", summary="One remembered value")
async def get_memory(
    session_id: str, key: str, who: CurrentPrincipal, services: ServicesDep
) -> MemoryItemOut:
    item = await asyncio.to_thread(services.sessions.memory_get, who, session_id, key)
    if item is None:
        raise MemoryKeyNotFoundError(f"no memory key {key!r} in session {session_id!r}")
    return MemoryItemOut.of(item)


@router.put("/{session_id}/memory/{key}", summary="Remember a value")
async def put_memory(
    session_id: str,
    key: str,
    body: MemoryValue,
    who: CurrentPrincipal,
    services: ServicesDep,
) -> MemoryItemOut:
    item = await asyncio.to_thread(services.sessions.memory_set, who, session_id, key, body.value)
    return MemoryItemOut.of(item)


@router.delete("/{session_id}/memory/{key}", status_code=204, summary="Forget a value")
async def delete_memory(
    session_id: str, key: str, who: CurrentPrincipal, services: ServicesDep
) -> Response:
    if not await asyncio.to_thread(services.sessions.memory_delete, who, session_id, key):
        raise MemoryKeyNotFoundError(f"no memory key {key!r} in session {session_id!r}")
    return Response(status_code=204)
