"""Adapter over the official ``openai`` SDK for OpenAI and OpenAI-compatible servers.

One class serves ``openai/``, ``vllm/``, ``ollama/``, ``databricks/``, ``llamacpp/`` and
``sim/`` models; ``lm/openai_endpoints.py`` builds it from the environment per provider.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Literal, cast

from rlm_engine.errors import ProviderError
from rlm_engine.lm.base import StreamDone, StreamEvent
from rlm_engine.lm.client_pool import ClientPool
from rlm_engine.lm.http_errors import status_error
from rlm_engine.lm.openai_direct import DirectChat
from rlm_engine.lm.openai_shape import (
    StreamAccumulator,
    completion_from,
    messages_payload,
    settings_payload,
)
from rlm_engine.lm.payload import malformed
from rlm_engine.lm.streaming import relay_chunks
from rlm_engine.types import Completion, Message, ModelSettings

if TYPE_CHECKING:
    from openai import AsyncOpenAI, AsyncStream
    from openai.types.chat import (
        ChatCompletionChunk,
        ChatCompletionMessageParam,
    )

DEFAULT_TIMEOUT_S = 600.0
# The longest silence between two reads of a reply: a provider that accepted the request
# and then stopped sending must not hold a run for the whole request timeout.
# ``RLM_REQUEST_TIMEOUT`` (``rlm ask --request-timeout``) sets it per run.
DEFAULT_READ_TIMEOUT_S = 120.0

# OpenAI's newer models take max_completion_tokens; most compatible servers max_tokens.
MaxTokensParam = Literal["max_completion_tokens", "max_tokens"]
# How non-streaming calls travel: "direct" (lean HTTP/1.1 POST) or "sdk" (the SDK's
# request path). Streaming always uses the SDK.
Transport = Literal["direct", "sdk"]


class OpenAIChatModel:
    """A chat model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    The SDK's own retries are off (``max_retries=0``): ``RetryingModel`` retries with a
    shared budget and circuit breaker instead. SDK clients come from a ``ClientPool``
    (per event loop, more than one under heavy concurrency).
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        provider: str = "openai",
        base_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        max_tokens_param: MaxTokensParam = "max_completion_tokens",
        default_headers: Mapping[str, str] | None = None,
        client: AsyncOpenAI | None = None,
        transport: Transport = "direct",
    ) -> None:
        self._model = model
        self._provider = provider
        self._api_key = api_key
        self._base_url = base_url
        self._timeout_s = timeout_s
        # Public so the registry can apply ``RLM_REQUEST_TIMEOUT`` before the first call
        # (clients are built lazily, with the value current then).
        self.read_timeout_s = read_timeout_s
        self._max_tokens_param = max_tokens_param
        self._default_headers = dict(default_headers or {})
        # aiohttp's pool stays cheap with many requests in flight, so one client per loop
        # carries a whole fan-out; the pool only opens more past a thousand at once.
        self._clients = ClientPool(self._new_client, _close_client, fixed=client, per_client=1024)
        # An injected SDK client is what the caller wants used, so it carries every call.
        self._direct = (
            DirectChat(
                provider=provider, base_url=base_url, api_key=api_key, headers=default_headers
            )
            if transport == "direct" and client is None
            else None
        )

    @property
    def name(self) -> str:
        """The canonical ``provider/model`` string."""
        return f"{self._provider}/{self._model}"

    @property
    def provider(self) -> str:
        """The provider name, e.g. ``openai``."""
        return self._provider

    @property
    def base_url(self) -> str | None:
        """The endpoint this model talks to (``None``: the SDK's default)."""
        return self._base_url

    def __repr__(self) -> str:
        return f"OpenAIChatModel({self.name!r}, base_url={self._base_url!r})"

    def _new_client(self) -> AsyncOpenAI:
        from openai import AsyncOpenAI, DefaultAioHttpClient

        return AsyncOpenAI(
            api_key=self._api_key,
            base_url=self._base_url,
            timeout=self._sdk_timeout(self._timeout_s),
            max_retries=0,
            default_headers=self._default_headers or None,
            # aiohttp transport: httpx's connection pool does work proportional to its
            # pending requests on every state change, which made a 256-call fan-out at
            # 64 in flight take 8x the ideal time; aiohttp keeps it near the ideal.
            http_client=DefaultAioHttpClient(),
        )

    def _read_timeout(self, total_s: float) -> float:
        return min(self.read_timeout_s, total_s)

    def _sdk_timeout(self, total_s: float) -> Any:
        import httpx

        return httpx.Timeout(total_s, read=self._read_timeout(total_s))

    async def aclose(self) -> None:
        """Close the HTTP clients opened in the running event loop."""
        await self._clients.aclose()
        if self._direct is not None:
            await self._direct.aclose()

    def _body(self, messages: Sequence[Message], settings: ModelSettings) -> dict[str, Any]:
        return {
            "model": self._model,
            "messages": messages_payload(messages),
            **settings_payload(settings, max_tokens_param=self._max_tokens_param),
        }

    async def _post(
        self, client: AsyncOpenAI, messages: Sequence[Message], settings: ModelSettings
    ) -> object:
        """POST through the SDK's own request path (auth, base URL, headers, typed status
        errors) but skip its per-call parameter transform and response models: together
        they cost about a millisecond of CPU per call, which a fan-out of hundreds of
        concurrent sub-calls on one event loop pays in wall time."""
        import httpx

        body = self._body(messages, settings)
        options: dict[str, Any] = {}
        if settings.timeout_s is not None:
            options["timeout"] = self._sdk_timeout(settings.timeout_s)
        response = await client.post(
            "/chat/completions", body=body, cast_to=httpx.Response, options=cast(Any, options)
        )
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise malformed(self._provider, "the body is not JSON") from exc

    async def _create_stream(
        self, client: AsyncOpenAI, messages: Sequence[Message], settings: ModelSettings
    ) -> AsyncStream[ChatCompletionChunk]:
        from openai import NOT_GIVEN, omit

        limit = settings.max_output_tokens if settings.max_output_tokens is not None else omit
        return await client.chat.completions.create(
            model=self._model,
            messages=_message_params(messages),
            temperature=settings.temperature if settings.temperature is not None else omit,
            max_completion_tokens=limit
            if self._max_tokens_param == "max_completion_tokens"
            else omit,
            max_tokens=limit if self._max_tokens_param == "max_tokens" else omit,
            stop=list(settings.stop) if settings.stop else omit,
            timeout=self._sdk_timeout(settings.timeout_s)
            if settings.timeout_s is not None
            else NOT_GIVEN,
            stream=True,
            stream_options={"include_usage": True},
        )

    async def complete(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> Completion:
        """One chat completion. Raises ``ProviderError`` with a typed ``kind``."""
        started = time.perf_counter()
        settings = settings or ModelSettings()
        try:
            if self._direct is not None:
                timeout = settings.timeout_s if settings.timeout_s is not None else self._timeout_s
                body = self._body(messages, settings)
                response = await self._direct.post(
                    body, timeout_s=timeout, read_timeout_s=self._read_timeout(timeout)
                )
            else:
                async with self._clients.lease() as client:
                    response = await self._post(client, messages, settings)
        except Exception as exc:
            raise map_openai_error(exc, self._provider) from exc
        return completion_from(
            response,
            name=self.name,
            provider=self._provider,
            messages=messages,
            latency_s=time.perf_counter() - started,
        )

    async def stream(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Stream the reply as text deltas, then ``StreamDone`` with usage."""
        accumulator = StreamAccumulator(name=self.name, provider=self._provider, messages=messages)
        started = time.perf_counter()
        async with self._clients.lease() as client:
            try:
                chunks = await self._create_stream(client, messages, settings or ModelSettings())
            except Exception as exc:
                raise map_openai_error(exc, self._provider) from exc
            relay = relay_chunks(
                cast(AsyncIterator[object], chunks),
                accumulator.add,
                lambda exc: map_openai_error(exc, self._provider),
            )
            async with aclosing(relay) as deltas:
                async for delta in deltas:
                    yield delta
        yield StreamDone(
            type="done", completion=accumulator.completion(time.perf_counter() - started)
        )


async def _close_client(client: AsyncOpenAI) -> None:
    await client.close()


def _message_params(messages: Sequence[Message]) -> list[ChatCompletionMessageParam]:
    # The payload is exactly the SDK's message TypedDicts; the role is checked by our type.
    return cast("list[ChatCompletionMessageParam]", messages_payload(messages))


def map_openai_error(exc: Exception, provider: str) -> Exception:
    """The ``ProviderError`` for an exception raised by the ``openai`` SDK.

    Exceptions that are not about the provider (programming errors) are returned as-is.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        return ProviderError(
            f"{provider}: malformed response body: {exc}", kind="malformed", provider=provider
        )
    if "openai" not in sys.modules:
        # The direct path never imports the SDK, so none of its exceptions can be raised;
        # importing it here would cost seconds while a run shuts down.
        return exc
    import openai

    if isinstance(exc, openai.APITimeoutError) and not _refused(exc):
        return ProviderError(f"{provider}: request timed out", kind="timeout", provider=provider)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(
            f"{provider}: connection failed: {exc}", kind="connection", provider=provider
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return ProviderError(
            f"{provider}: malformed response: {exc}", kind="malformed", provider=provider
        )
    if isinstance(exc, openai.APIStatusError):
        return status_error(
            provider,
            exc.status_code,
            _error_message(exc.body, exc.message),
            code=exc.code,
            headers=exc.response.headers,
        )
    if isinstance(exc, openai.APIError):
        # An error event inside a stream: the server failed after it had started replying.
        return ProviderError(f"{provider}: {exc.message}", kind="server", provider=provider)
    return exc


# aiohttp failures the SDK's transport reports as connect timeouts although the server
# went away mid-reply.
_DISCONNECTS = frozenset({"ServerDisconnectedError", "ClientPayloadError", "ClientOSError"})


def _refused(exc: BaseException) -> bool:
    """Whether a "timeout" was really a refused or failed connect.

    The aiohttp transport reports every connection error as a connect timeout; the OS
    error underneath tells them apart.
    """
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
            return True
        if type(cause).__name__ in _DISCONNECTS:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _error_message(body: object, fallback: str) -> str:
    if isinstance(body, dict):
        message = cast(dict[str, Any], body).get("message")
        if isinstance(message, str) and message:
            return message
    return fallback
