"""The LiteLLM adapter against a fake ``litellm`` module injected into ``sys.modules``."""

from __future__ import annotations

import sys
import types
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from rlm_engine.errors import MissingExtraError, ProviderError
from rlm_engine.lm import StreamDone, TextDelta, resolve_model
from rlm_engine.lm.litellm import LiteLLMModel
from rlm_engine.types import Message, ModelSettings

ASK = [Message("system", "s"), Message("user", "hello")]


class BadRequestError(Exception):
    status_code = 400


class ContextWindowExceededError(BadRequestError):
    pass


class ContentPolicyViolationError(BadRequestError):
    pass


class RateLimitError(Exception):
    status_code = 429

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.response = SimpleNamespace(headers={"retry-after": "2"})


class Timeout(Exception):
    status_code = 408


class APIConnectionError(Exception):
    status_code = 500


class APIError(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


class FakeLiteLLM(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("litellm")
        self.calls: list[dict[str, Any]] = []
        self.result: Any = None

    async def acompletion(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.fixture
def fake_litellm(monkeypatch: pytest.MonkeyPatch) -> FakeLiteLLM:
    module = FakeLiteLLM()
    monkeypatch.setitem(sys.modules, "litellm", module)
    return module


def openai_shaped(text: str) -> dict[str, Any]:
    return {
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    }


async def test_complete_passes_request_and_reads_response(fake_litellm: FakeLiteLLM) -> None:
    fake_litellm.result = openai_shaped("hi there")
    model = resolve_model("litellm/openai/gpt-4o-mini", env={})
    completion = await model.complete(ASK, ModelSettings(temperature=0.0, max_output_tokens=9))

    call = fake_litellm.calls[0]
    assert call["model"] == "openai/gpt-4o-mini"
    assert call["messages"] == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "hello"},
    ]
    assert call["temperature"] == 0.0 and call["max_tokens"] == 9
    assert call["num_retries"] == 0
    assert completion.text == "hi there"
    assert completion.model == "litellm/openai/gpt-4o-mini"
    assert (completion.usage.input_tokens, completion.usage.cached_tokens) == (12, 4)


async def test_env_overrides_are_passed(fake_litellm: FakeLiteLLM) -> None:
    fake_litellm.result = openai_shaped("x")
    env = {"LITELLM_API_BASE": "http://127.0.0.1:4000", "LITELLM_API_KEY": "key"}
    await resolve_model("litellm/any", env=env).complete(ASK)
    assert fake_litellm.calls[0]["api_base"] == "http://127.0.0.1:4000"
    assert fake_litellm.calls[0]["api_key"] == "key"


async def test_stream(fake_litellm: FakeLiteLLM) -> None:
    chunks = [
        {"choices": [{"delta": {"content": "Hel"}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
    ]

    async def stream() -> AsyncIterator[Any]:
        for chunk in chunks:
            yield chunk

    async def acompletion(**kwargs: Any) -> Any:
        fake_litellm.calls.append(kwargs)
        return stream()

    fake_litellm.acompletion = acompletion  # type: ignore[method-assign]
    model = LiteLLMModel("openai/gpt-4o-mini")
    events = [event async for event in model.stream(ASK)]
    assert fake_litellm.calls[0]["stream"] is True
    assert fake_litellm.calls[0]["stream_options"] == {"include_usage": True}
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo"]
    done = events[-1]
    assert isinstance(done, StreamDone)
    assert done.completion.text == "Hello"
    assert done.completion.usage.output_tokens == 2


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ContextWindowExceededError("too long"), "context_length"),
        (ContentPolicyViolationError("no"), "content_filter"),
        (RateLimitError("slow"), "rate_limit"),
        (Timeout("late"), "timeout"),
        (APIConnectionError("down"), "connection"),
        (APIError(503, "unavailable"), "server"),
        (APIError(401, "bad key"), "auth"),
        (BadRequestError("This model's maximum context length is 4096"), "context_length"),
        (BadRequestError("bad temperature"), "bad_request"),
    ],
)
async def test_errors_map_to_kinds(fake_litellm: FakeLiteLLM, exc: Exception, kind: str) -> None:
    fake_litellm.result = exc
    with pytest.raises(ProviderError) as caught:
        await LiteLLMModel("openai/gpt-4o-mini").complete(ASK)
    assert caught.value.kind == kind
    assert caught.value.provider == "litellm"
    if kind == "rate_limit":
        assert caught.value.retry_after_s == 2.0


async def test_empty_response_is_malformed(fake_litellm: FakeLiteLLM) -> None:
    fake_litellm.result = {"choices": []}
    with pytest.raises(ProviderError) as caught:
        await LiteLLMModel("m").complete(ASK)
    assert caught.value.kind == "malformed"


def test_missing_litellm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)
    with pytest.raises(MissingExtraError, match=r"rlm-engine\[litellm\]") as caught:
        resolve_model("litellm/openai/gpt-4o-mini", env={})
    assert caught.value.extra == "litellm"
