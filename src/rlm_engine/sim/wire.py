"""JSON payloads of the OpenAI chat-completions protocol, as the simulator sends them."""

from __future__ import annotations

import time
from typing import Any


def usage_payload(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """A ``usage`` object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def completion_payload(
    request_id: str,
    model: str,
    text: str,
    finish_reason: str,
    usage: dict[str, Any],
) -> dict[str, Any]:
    """A non-streaming chat completion with one choice."""
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
    }


def empty_choices_payload(request_id: str, model: str, usage: dict[str, Any]) -> dict[str, Any]:
    """A well-formed completion without any choice (a fault some servers produce)."""
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": usage,
    }


def chunk_payload(
    request_id: str,
    model: str,
    *,
    content: str | None = None,
    role: str | None = None,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` of a stream."""
    delta: dict[str, Any] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def usage_chunk_payload(request_id: str, model: str, usage: dict[str, Any]) -> dict[str, Any]:
    """The final stream chunk sent for ``stream_options.include_usage``."""
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": usage,
    }


def error_payload(message: str, error_type: str, code: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def models_payload(models: tuple[str, ...]) -> dict[str, Any]:
    """The ``GET /v1/models`` listing."""
    return {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": 0, "owned_by": "rlm-sim"}
            for model in models
        ],
    }
