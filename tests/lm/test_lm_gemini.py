"""The Gemini adapter with a fake client: conversion, usage, filters, errors."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from google.genai import errors as genai_errors

from rlm_engine.errors import MissingExtraError, ProviderError
from rlm_engine.lm import StreamDone, TextDelta
from rlm_engine.lm.gemini import GeminiModel, map_gemini_error, retry_delay, to_request
from rlm_engine.types import Message, ModelSettings

ASK = [
    Message("system", "Be brief."),
    Message("user", "hi"),
    Message("assistant", "yo"),
    Message("user", "go"),
]


def response(text: str, finish: str = "STOP", block: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        prompt_feedback=SimpleNamespace(block_reason=block) if block else None,
        candidates=[
            SimpleNamespace(
                finish_reason=finish,
                content=SimpleNamespace(
                    parts=[
                        SimpleNamespace(text="thinking...", thought=True),
                        SimpleNamespace(text=text, thought=None),
                    ]
                ),
            )
        ]
        if block is None
        else [],
        usage_metadata=SimpleNamespace(
            prompt_token_count=40,
            candidates_token_count=8,
            thoughts_token_count=4,
            cached_content_token_count=16,
        ),
    )


class FakeModels:
    def __init__(self, result: Any) -> None:
        self.result = result
        self.requests: list[dict[str, Any]] = []

    async def generate_content(self, **kwargs: Any) -> Any:
        self.requests.append(kwargs)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    async def generate_content_stream(self, **kwargs: Any) -> AsyncIterator[Any]:
        self.requests.append(kwargs)

        async def chunks() -> AsyncIterator[Any]:
            for chunk in self.result:
                yield chunk

        return chunks()


def model_with(result: Any) -> tuple[GeminiModel, FakeModels]:
    models = FakeModels(result)
    client: Any = SimpleNamespace(aio=SimpleNamespace(models=models))
    return GeminiModel("gemini-2.5-flash", api_key="k", client=client), models


def test_request_conversion() -> None:
    request = to_request(
        ASK, ModelSettings(temperature=0.1, max_output_tokens=64, stop=("X",), timeout_s=2.5)
    )
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "yo"}]},
        {"role": "user", "parts": [{"text": "go"}]},
    ]
    assert request["config"] == {
        "system_instruction": "Be brief.",
        "temperature": 0.1,
        "max_output_tokens": 64,
        "stop_sequences": ["X"],
        "http_options": {"timeout": 2500},
    }


async def test_complete_reads_text_and_usage() -> None:
    model, models = model_with(response("hello"))
    completion = await model.complete(ASK)
    assert models.requests[0]["model"] == "gemini-2.5-flash"
    assert completion.text == "hello"  # the thought part is left out
    assert completion.model == "gemini/gemini-2.5-flash"
    assert completion.finish_reason == "stop"
    assert completion.usage.input_tokens == 40
    assert completion.usage.output_tokens == 12
    assert completion.usage.cached_tokens == 16


@pytest.mark.parametrize(("finish", "block"), [("SAFETY", None), ("STOP", "PROHIBITED_CONTENT")])
async def test_filtered_replies_are_content_filter(finish: str, block: str | None) -> None:
    model, _ = model_with(response("", finish=finish, block=block))
    with pytest.raises(ProviderError) as caught:
        await model.complete(ASK)
    assert caught.value.kind == "content_filter"


async def test_no_candidates_is_malformed() -> None:
    empty = SimpleNamespace(prompt_feedback=None, candidates=[], usage_metadata=None)
    model, _ = model_with(empty)
    with pytest.raises(ProviderError) as caught:
        await model.complete(ASK)
    assert caught.value.kind == "malformed"


async def test_stream() -> None:
    chunks = [response("Hel", finish=""), response("lo", finish="STOP")]
    model, _ = model_with(chunks)
    events = [event async for event in model.stream(ASK)]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo"]
    done = events[-1]
    assert isinstance(done, StreamDone)
    assert done.completion.text == "Hello"
    assert done.completion.finish_reason == "stop"


def quota_error() -> genai_errors.APIError:
    body = {
        "error": {
            "code": 429,
            "message": "Resource has been exhausted",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"}],
        }
    }
    return genai_errors.ClientError(429, body)


async def test_quota_error_is_rate_limit_with_retry_delay() -> None:
    model, _ = model_with(quota_error())
    with pytest.raises(ProviderError) as caught:
        await model.complete(ASK)
    assert caught.value.kind == "rate_limit"
    assert caught.value.retry_after_s == 13.0


@pytest.mark.parametrize(
    ("code", "message", "kind"),
    [
        (
            400,
            "The input token count exceeds the maximum number of tokens allowed",
            "context_length",
        ),
        (400, "Invalid value", "bad_request"),
        (403, "API key not valid", "auth"),
        (404, "models/x is not found", "not_found"),
        (500, "Internal error", "server"),
        (503, "The model is overloaded", "server"),
    ],
)
def test_api_errors_map_to_kinds(code: int, message: str, kind: str) -> None:
    cls = genai_errors.ServerError if code >= 500 else genai_errors.ClientError
    mapped = map_gemini_error(cls(code, {"error": {"code": code, "message": message}}))
    assert isinstance(mapped, ProviderError)
    assert mapped.kind == kind


def test_transport_errors_map_to_kinds() -> None:
    timeout = map_gemini_error(httpx.ReadTimeout("slow"))
    connection = map_gemini_error(httpx.ConnectError("refused"))
    assert isinstance(timeout, ProviderError) and timeout.kind == "timeout"
    assert isinstance(connection, ProviderError) and connection.kind == "connection"


def test_retry_delay_absent() -> None:
    assert retry_delay({"error": {"details": [{"retryDelay": "soon"}]}}) is None
    assert retry_delay(None) is None


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.genai", None)
    with pytest.raises(MissingExtraError, match=r"rlm-engine\[gemini\]"):
        GeminiModel("gemini-2.5-flash", api_key="k")
