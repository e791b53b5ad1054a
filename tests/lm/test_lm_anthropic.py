"""The Anthropic adapter with a fake client: conversion, usage, streaming, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import anthropic
import httpx
import pytest

from rlm_engine.errors import ProviderError
from rlm_engine.lm import StreamDone, TextDelta
from rlm_engine.lm.anthropic import AnthropicModel, map_anthropic_error, split_messages
from rlm_engine.types import Message, ModelSettings

ASK = [
    Message("system", "Be brief."),
    Message("system", "Use Python."),
    Message("user", "hi"),
    Message("user", "and more"),
    Message("assistant", "ok"),
    Message("user", "go"),
]


class FakeMessages:
    def __init__(self, result: Any) -> None:
        self.result = result
        self.requests: list[dict[str, Any]] = []

    async def create(self, **kwargs: Any) -> Any:
        self.requests.append(kwargs)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def fake_client(result: Any) -> Any:
    return SimpleNamespace(messages=FakeMessages(result))


def reply(text: str, stop_reason: str = "end_turn") -> SimpleNamespace:
    return SimpleNamespace(
        content=[
            SimpleNamespace(type="thinking", thinking="..."),
            SimpleNamespace(type="text", text=text),
        ],
        stop_reason=stop_reason,
        usage=SimpleNamespace(
            input_tokens=100,
            output_tokens=20,
            cache_read_input_tokens=300,
            cache_creation_input_tokens=50,
        ),
    )


def test_system_messages_are_joined_and_roles_merged() -> None:
    system, turns = split_messages(ASK)
    assert system == "Be brief.\n\nUse Python."
    assert turns == [
        {"role": "user", "content": "hi\n\nand more"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "go"},
    ]


async def test_complete_builds_request_and_reads_usage() -> None:
    client = fake_client(reply("hello"))
    model = AnthropicModel("claude-sonnet-4-5", api_key="k", client=client)
    completion = await model.complete(ASK, ModelSettings(temperature=0.2, stop=("END",)))

    request = client.messages.requests[0]
    assert request["model"] == "claude-sonnet-4-5"
    assert request["max_tokens"] == 8192
    assert request["system"] == "Be brief.\n\nUse Python."
    assert request["stop_sequences"] == ["END"]
    assert request["extra_body"] == {"temperature": 0.2}
    assert completion.text == "hello"
    assert completion.model == "anthropic/claude-sonnet-4-5"
    assert completion.finish_reason == "stop"
    assert completion.usage.input_tokens == 450  # uncached + cache reads + cache writes
    assert completion.usage.cached_tokens == 300
    assert completion.usage.output_tokens == 20


async def test_max_output_tokens_and_length_finish() -> None:
    client = fake_client(reply("cut", stop_reason="max_tokens"))
    model = AnthropicModel("m", api_key="k", client=client)
    completion = await model.complete(ASK, ModelSettings(max_output_tokens=5))
    assert client.messages.requests[0]["max_tokens"] == 5
    assert completion.finish_reason == "length"


async def test_refusal_is_content_filter() -> None:
    model = AnthropicModel("m", api_key="k", client=fake_client(reply("", "refusal")))
    with pytest.raises(ProviderError) as caught:
        await model.complete(ASK)
    assert caught.value.kind == "content_filter"


async def test_stream_events_become_deltas_and_usage() -> None:
    events = [
        SimpleNamespace(
            type="message_start",
            message=SimpleNamespace(
                usage=SimpleNamespace(input_tokens=10, output_tokens=1, cache_read_input_tokens=5)
            ),
        ),
        SimpleNamespace(type="content_block_start"),
        SimpleNamespace(
            type="content_block_delta", delta=SimpleNamespace(type="text_delta", text="Hel")
        ),
        SimpleNamespace(
            type="content_block_delta", delta=SimpleNamespace(type="text_delta", text="lo")
        ),
        SimpleNamespace(
            type="message_delta",
            delta=SimpleNamespace(stop_reason="end_turn"),
            usage=SimpleNamespace(output_tokens=7),
        ),
        SimpleNamespace(type="message_stop"),
    ]

    async def stream() -> AsyncIterator[Any]:
        for event in events:
            yield event

    client = fake_client(None)

    async def create(**kwargs: Any) -> AsyncIterator[Any]:
        client.messages.requests.append(kwargs)
        return stream()

    client.messages.create = create
    model = AnthropicModel("m", api_key="k", client=client)
    out = [event async for event in model.stream(ASK)]

    assert client.messages.requests[0]["stream"] is True
    assert [e.text for e in out if isinstance(e, TextDelta)] == ["Hel", "lo"]
    done = out[-1]
    assert isinstance(done, StreamDone)
    assert done.completion.text == "Hello"
    assert done.completion.usage.input_tokens == 15
    assert done.completion.usage.output_tokens == 7
    assert done.completion.finish_reason == "stop"


def status_exc(
    cls: type[anthropic.APIStatusError],
    status: int,
    body: Any,
    headers: dict[str, str] | None = None,
) -> anthropic.APIStatusError:
    response = SimpleNamespace(
        status_code=status, headers=httpx.Headers(headers or {}), request=None
    )
    return cls("error", response=response, body=body)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "kind", "retry_after"),
    [
        (
            status_exc(
                anthropic.RateLimitError,
                429,
                {"error": {"type": "rate_limit_error", "message": "slow"}},
                {"retry-after": "6"},
            ),
            "rate_limit",
            6.0,
        ),
        (
            status_exc(
                anthropic.InternalServerError,
                529,
                {"error": {"type": "overloaded_error", "message": "Overloaded"}},
            ),
            "server",
            None,
        ),
        (
            status_exc(
                anthropic.BadRequestError,
                400,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "prompt is too long: 250000 tokens > 200000 maximum",
                    }
                },
            ),
            "context_length",
            None,
        ),
        (
            status_exc(
                anthropic.AuthenticationError,
                401,
                {"error": {"type": "authentication_error", "message": "invalid x-api-key"}},
            ),
            "auth",
            None,
        ),
        (
            status_exc(
                anthropic.NotFoundError,
                404,
                {"error": {"type": "not_found_error", "message": "model"}},
            ),
            "not_found",
            None,
        ),
    ],
)
async def test_status_errors_map_to_kinds(
    exc: Exception, kind: str, retry_after: float | None
) -> None:
    model = AnthropicModel("m", api_key="k", client=fake_client(exc))
    with pytest.raises(ProviderError) as caught:
        await model.complete(ASK)
    assert caught.value.kind == kind
    assert caught.value.retry_after_s == retry_after
    assert caught.value.provider == "anthropic"


def test_transport_errors_map_to_kinds() -> None:
    request: Any = SimpleNamespace(url="https://example.invalid")
    timeout = map_anthropic_error(anthropic.APITimeoutError(request=request))
    connection = map_anthropic_error(anthropic.APIConnectionError(request=request))
    assert isinstance(timeout, ProviderError) and timeout.kind == "timeout"
    assert isinstance(connection, ProviderError) and connection.kind == "connection"
    bug = KeyError("x")
    assert map_anthropic_error(bug) is bug
