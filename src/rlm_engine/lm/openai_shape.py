"""Read OpenAI-shaped chat responses and stream chunks into our types.

Shared by the OpenAI adapter (typed SDK objects) and the LiteLLM adapter (look-alike
objects or dicts), so every field is read defensively through ``payload.field``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from rlm_engine.errors import ProviderError
from rlm_engine.lm.payload import as_int, field, malformed
from rlm_engine.lm.tokens import estimate_usage
from rlm_engine.types import Completion, Message, ModelSettings, Usage


def messages_payload(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Our messages as chat-completions message objects."""
    return [{"role": m.role, "content": m.content} for m in messages]


def settings_payload(settings: ModelSettings, *, max_tokens_param: str) -> dict[str, Any]:
    """Request fields for the settings that are set (unset ones keep provider defaults)."""
    payload: dict[str, Any] = {}
    if settings.temperature is not None:
        payload["temperature"] = settings.temperature
    if settings.max_output_tokens is not None:
        payload[max_tokens_param] = settings.max_output_tokens
    if settings.stop:
        payload["stop"] = list(settings.stop)
    return payload


def usage_from(raw: object) -> Usage | None:
    """Usage from an OpenAI ``usage`` object; ``None`` when the response carried none."""
    if raw is None:
        return None
    details = field(raw, "prompt_tokens_details")
    cached = as_int(field(details, "cached_tokens")) if details is not None else 0
    return Usage(
        input_tokens=as_int(field(raw, "prompt_tokens")),
        output_tokens=as_int(field(raw, "completion_tokens")),
        cached_tokens=cached,
        requests=1,
    )


def content_filtered(provider: str) -> ProviderError:
    """The error for a reply withheld by a content filter (never retried)."""
    return ProviderError(
        f"{provider}: the reply was withheld by the provider's content filter",
        kind="content_filter",
        provider=provider,
    )


def completion_from(
    response: object,
    *,
    name: str,
    provider: str,
    messages: Sequence[Message],
    latency_s: float,
) -> Completion:
    """A ``Completion`` from a chat-completions response object."""
    choices = field(response, "choices")
    if not isinstance(choices, (list, tuple)) or not choices:
        raise malformed(provider, "the response has no choices")
    first: object = cast(Sequence[object], choices)[0]
    finish = field(first, "finish_reason")
    if finish == "content_filter":
        raise content_filtered(provider)
    message = field(first, "message")
    if message is None:
        raise malformed(provider, "the first choice has no message")
    content = field(message, "content")
    text = content if isinstance(content, str) else ""
    usage = usage_from(field(response, "usage")) or estimate_usage(messages, text)
    return Completion(
        text=text,
        model=name,
        usage=usage,
        latency_s=latency_s,
        finish_reason=finish if isinstance(finish, str) else None,
        provider=provider,
    )


class StreamAccumulator:
    """Collects chat-completion chunks into deltas and, at the end, a ``Completion``."""

    def __init__(self, *, name: str, provider: str, messages: Sequence[Message]) -> None:
        self._name = name
        self._provider = provider
        self._messages = messages
        self._parts: list[str] = []
        self._usage: Usage | None = None
        self._finish: str | None = None
        self._saw_choice = False

    def add(self, chunk: object) -> str:
        """Take one chunk; return the text it adds (possibly empty)."""
        usage = usage_from(field(chunk, "usage"))
        if usage is not None:
            self._usage = usage
        choices = field(chunk, "choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            return ""
        self._saw_choice = True
        first: object = cast(Sequence[object], choices)[0]
        finish = field(first, "finish_reason")
        if finish == "content_filter":
            raise content_filtered(self._provider)
        if isinstance(finish, str):
            self._finish = finish
        delta = field(first, "delta")
        content = field(delta, "content") if delta is not None else None
        if isinstance(content, str) and content:
            self._parts.append(content)
            return content
        return ""

    def completion(self, latency_s: float) -> Completion:
        """The whole reply; raises ``malformed`` when the stream carried no choice at all."""
        if not self._saw_choice:
            raise malformed(self._provider, "the stream ended without any choice")
        text = "".join(self._parts)
        return Completion(
            text=text,
            model=self._name,
            usage=self._usage or estimate_usage(self._messages, text),
            latency_s=latency_s,
            finish_reason=self._finish,
            provider=self._provider,
        )
