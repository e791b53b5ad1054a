"""A chat-completions request as the simulator parses and logs it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from rlm_engine.sim.config import FaultKind
from rlm_engine.sim.policies import JsonMessage, message_text


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One chat request as the simulator saw it.

    ``status`` is ``None`` when the connection was dropped without a reply (the
    ``timeout`` fault). ``time`` is the wall-clock arrival time.
    """

    time: float
    model: str
    message_count: int
    prompt_chars: int
    messages: tuple[JsonMessage, ...]
    status: int | None
    streamed: bool
    fault: FaultKind | None
    duration_s: float
    temperature: float | None = None
    max_tokens: int | None = None
    """The sampling settings the client sent (None: not sent)."""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The parts of a chat request the simulator acts on."""

    model: str
    messages: list[JsonMessage]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    prompt_chars: int
    temperature: float | None = None


class BadRequest(Exception):
    """The request body is not a chat-completions request; answered with 400."""


def parse_chat(body: bytes) -> ChatRequest:
    """Parse a chat-completions JSON body; raises ``BadRequest`` with the reason."""
    try:
        raw: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise BadRequest("request body must be a JSON object")
    data = cast(dict[str, Any], raw)
    messages_raw = data.get("messages")
    if not isinstance(messages_raw, list) or not messages_raw:
        raise BadRequest("'messages' must be a non-empty list")
    messages: list[JsonMessage] = []
    for item in cast(list[Any], messages_raw):
        if not isinstance(item, dict):
            raise BadRequest("every message must be an object")
        messages.append(cast(JsonMessage, item))
    options = data.get("stream_options")
    include_usage = isinstance(options, dict) and bool(
        cast(dict[str, Any], options).get("include_usage")
    )
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    temperature = data.get("temperature")
    return ChatRequest(
        model=str(data.get("model", "")),
        messages=messages,
        stream=bool(data.get("stream", False)),
        include_usage=include_usage,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        prompt_chars=sum(len(message_text(m)) for m in messages),
        temperature=float(temperature) if isinstance(temperature, int | float) else None,
    )
