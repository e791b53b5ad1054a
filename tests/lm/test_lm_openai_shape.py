"""Reading OpenAI-shaped responses and mapping ``openai`` SDK errors, without a server."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from rlm_engine.errors import ProviderError
from rlm_engine.lm.openai import map_openai_error
from rlm_engine.lm.openai_shape import StreamAccumulator, completion_from
from rlm_engine.types import Message

ASK = [Message("user", "12345678")]


def response(finish: str = "stop", usage: Any = None) -> dict[str, Any]:
    return {
        "choices": [{"message": {"content": "reply"}, "finish_reason": finish}],
        "usage": usage,
    }


def read(raw: object) -> Any:
    return completion_from(raw, name="openai/m", provider="openai", messages=ASK, latency_s=0.1)


def test_cached_tokens_are_read() -> None:
    usage = {
        "prompt_tokens": 50,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 32},
    }
    completion = read(response(usage=usage))
    assert (completion.usage.input_tokens, completion.usage.cached_tokens) == (50, 32)
    assert completion.usage.output_tokens == 5


def test_missing_usage_is_estimated() -> None:
    completion = read(response())
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (2, 2)


def test_content_filter_finish_reason_raises() -> None:
    with pytest.raises(ProviderError) as caught:
        read(response(finish="content_filter"))
    assert caught.value.kind == "content_filter"
    assert not caught.value.retryable


def test_content_filter_in_stream_raises() -> None:
    accumulator = StreamAccumulator(name="openai/m", provider="openai", messages=ASK)
    assert (
        accumulator.add({"choices": [{"delta": {"content": "par"}, "finish_reason": None}]})
        == "par"
    )
    with pytest.raises(ProviderError) as caught:
        accumulator.add({"choices": [{"delta": {}, "finish_reason": "content_filter"}]})
    assert caught.value.kind == "content_filter"


def test_stream_without_choices_is_malformed() -> None:
    accumulator = StreamAccumulator(name="openai/m", provider="openai", messages=ASK)
    accumulator.add({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 0}})
    with pytest.raises(ProviderError) as caught:
        accumulator.completion(0.1)
    assert caught.value.kind == "malformed"


def status_error(status: int, headers: dict[str, str], body: Any) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    http_response = httpx.Response(status, headers=headers, request=request)
    return openai.APIStatusError("error", response=http_response, body=body)


def test_retry_after_ms_header_is_used() -> None:
    error = map_openai_error(status_error(429, {"retry-after-ms": "250"}, None), "openai")
    assert isinstance(error, ProviderError)
    assert (error.kind, error.retry_after_s) == ("rate_limit", 0.25)


def test_body_message_and_code_are_used() -> None:
    body = {"message": "Your input exceeds the context window", "code": "context_length_exceeded"}
    error = map_openai_error(status_error(400, {}, body), "vllm")
    assert isinstance(error, ProviderError)
    assert error.kind == "context_length"
    assert error.provider == "vllm"
    assert "exceeds the context window" in str(error)


def test_response_validation_error_is_malformed() -> None:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    http_response = httpx.Response(200, request=request)
    error = map_openai_error(openai.APIResponseValidationError(http_response, body=None), "openai")
    assert isinstance(error, ProviderError) and error.kind == "malformed"


def test_unrelated_exceptions_pass_through() -> None:
    bug = AttributeError("no such attribute")
    assert map_openai_error(bug, "openai") is bug
