"""A chat completion as a run of the service: submitted to the durable queue (so the
tenant's limits and the queue apply, and the run is listed, resumable and counted in the
stats like any other), followed through its stored events, read back when it ends."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

from pydantic import ValidationError

from rlm_engine.engine.json_output import model_for_json_schema
from rlm_engine.server.openai_context import (
    ChatRequestError,
    Conversation,
    as_earlier_messages,
    joined,
    read_conversation,
)
from rlm_engine.server.openai_errors import OutputSchemaError, RunNotAnsweredError
from rlm_engine.server.openai_models import resolve
from rlm_engine.server.openai_schemas import (
    RUN_FIELDS,
    ChatRequest,
    CompletionUsage,
    PromptTokensDetails,
    ResponseFormat,
)
from rlm_engine.server.schemas import RunOptions
from rlm_engine.server.specs import spec_for
from rlm_engine.service import Services
from rlm_engine.service.principal import Principal
from rlm_engine.service.spec import RunSpec
from rlm_engine.settings import Settings
from rlm_engine.store.records import Run

CONTEXT_SESSION = "chat context"
"""The name of the session a request's inline context is kept as."""
ANSWERED = frozenset({"final", "submitted"})


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """What ``response_format`` asks of the answer: a JSON object, maybe of a schema."""

    schema: dict[str, Any] | None

    def output_schema(self) -> dict[str, Any]:
        """The run's typed output: the engine shows it to the root and sends SUBMIT
        fields that do not fit back to be fixed."""
        return {"type": "object"} if self.schema is None else self.schema

    def check(self, answer: str) -> None:
        """`OutputSchemaError` unless ``answer`` is a JSON object (of the schema)."""
        try:
            value: object = json.loads(answer)
        except json.JSONDecodeError as exc:
            raise OutputSchemaError(f"the answer is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise OutputSchemaError("the answer is not a JSON object")
        if self.schema is None:
            return
        import jsonschema

        try:
            jsonschema.validate(cast(dict[str, Any], value), self.schema)
        except jsonschema.ValidationError as exc:
            raise OutputSchemaError(
                f"the answer does not match the requested schema: {exc.message}"
            ) from exc


def output_format(response_format: ResponseFormat | None) -> OutputFormat | None:
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return OutputFormat(schema=None)
    given = response_format.json_schema
    if given is None or given.schema_ is None:
        raise ChatRequestError("response_format json_schema needs json_schema.schema")
    return OutputFormat(schema=given.schema_)


def spec_of(body: ChatRequest, settings: Settings, wanted: OutputFormat | None) -> RunSpec:
    """The run's spec: the model name's settings, overridden by the request's own."""
    fields = resolve(body.model, settings)
    for name in RUN_FIELDS:
        value = getattr(body, name)
        if value is not None:
            fields[name] = value
    try:
        options = RunOptions.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ChatRequestError(f"{where}: {first.get('msg')}" if where else str(exc)) from exc
    spec = spec_for(options, settings)
    if wanted is None:
        return spec
    schema = wanted.output_schema()
    model_for_json_schema(schema)  # a schema that cannot be used is refused before the run
    return dataclasses.replace(spec, output_schema=schema)


async def _context(
    conversation: Conversation, session_id: str | None, who: Principal, services: Services
) -> tuple[str, str | None, str | None]:
    """(question, session id, context key) of the run."""
    named = {*conversation.sessions, *([session_id] if session_id else [])}
    if len(named) > 1:
        raise ChatRequestError("the request names more than one session (file_id, session_id)")
    if named:
        info = await asyncio.to_thread(services.sessions.get, who, named.pop())
        question = as_earlier_messages(conversation.question, conversation.pieces)
        return question, info.id, info.context_key
    if not conversation.pieces:
        return conversation.question, None, None
    piece = joined(conversation.pieces)

    async def chunks() -> AsyncIterator[bytes]:
        yield piece.data

    info = await services.sessions.create_stream(
        who, CONTEXT_SESSION, chunks(), filename=piece.filename
    )
    return conversation.question, info.id, info.context_key


async def submit(
    body: ChatRequest, who: Principal, services: Services, settings: Settings
) -> tuple[Run, OutputFormat | None]:
    """Queue the run the request describes; nothing is written for an invalid one."""
    wanted = output_format(body.response_format)
    spec = spec_of(body, settings, wanted)
    conversation = read_conversation(body.messages)
    question, session, key = await _context(conversation, body.session_id, who, services)
    run = await services.queue.submit(who, question, spec, session=session, context_key=key)
    return run, wanted


def answer_of(run: Run, wanted: OutputFormat | None) -> str:
    """The answer of an ended run; `RunNotAnsweredError` for a run that has none."""
    if run.status != "completed" or not run.answer:
        raise RunNotAnsweredError(run)
    if wanted is not None:
        wanted.check(run.answer)
    return run.answer


def finish_reason(run: Run) -> str:
    """``stop`` for an answer the run gave; ``length`` for one forced at a limit."""
    return "stop" if run.stop_reason in ANSWERED else "length"


def usage(run: Run) -> CompletionUsage:
    t = run.totals
    return CompletionUsage(
        prompt_tokens=t.input_tokens,
        completion_tokens=t.output_tokens,
        total_tokens=t.input_tokens + t.output_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=t.cached_tokens),
    )


def completion_id(run_id: str) -> str:
    return f"chatcmpl-{run_id}"
