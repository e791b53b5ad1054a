"""Adapter over the ``anthropic`` SDK (extra ``anthropic``), imported lazily."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, cast

from rlm_engine.errors import ConfigurationError, MissingExtraError, ProviderError
from rlm_engine.lm.base import StreamDone, StreamEvent
from rlm_engine.lm.client_pool import ClientPool
from rlm_engine.lm.http_errors import status_error
from rlm_engine.lm.payload import as_int, field, malformed
from rlm_engine.lm.streaming import relay_chunks
from rlm_engine.types import Completion, Message, ModelSettings, Usage

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from anthropic.types import MessageParam

PROVIDER = "anthropic"
DEFAULT_MAX_TOKENS = 8192
DEFAULT_TIMEOUT_S = 600.0

# Anthropic's stop reasons in the OpenAI vocabulary the rest of the engine uses.
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
}


def require_sdk() -> None:
    """Fail with the extra to install when the ``anthropic`` package is missing."""
    try:
        import anthropic  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except ImportError as exc:
        raise MissingExtraError("The anthropic provider", "anthropic", "anthropic") from exc


def split_messages(messages: Sequence[Message]) -> tuple[str, list[dict[str, str]]]:
    """System text (system messages joined) and the user/assistant turns.

    Consecutive turns of one role are merged, since the API expects roles to alternate.
    """
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[dict[str, str]] = []
    for message in messages:
        if message.role == "system":
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"] += "\n\n" + message.content
        else:
            turns.append({"role": message.role, "content": message.content})
    return system, turns


def usage_from(raw: object) -> Usage:
    """Usage with ``input_tokens`` counting cached and cache-written input too.

    Anthropic reports uncached input separately from cache reads and writes; our ``Usage``
    (like OpenAI's) counts all input in ``input_tokens`` with ``cached_tokens`` a part of it.
    """
    cache_read = as_int(field(raw, "cache_read_input_tokens"))
    cache_write = as_int(field(raw, "cache_creation_input_tokens"))
    return Usage(
        input_tokens=as_int(field(raw, "input_tokens")) + cache_read + cache_write,
        output_tokens=as_int(field(raw, "output_tokens")),
        cached_tokens=cache_read,
        requests=1,
    )


def _finish(stop_reason: object) -> str | None:
    if stop_reason == "refusal":
        raise ProviderError(
            "anthropic: the model refused the request (stop_reason=refusal)",
            kind="content_filter",
            provider=PROVIDER,
        )
    if not isinstance(stop_reason, str):
        return None
    return _FINISH_REASONS.get(stop_reason, stop_reason)


def completion_from(response: object, *, name: str, latency_s: float) -> Completion:
    """A ``Completion`` from an Anthropic ``Message``."""
    content = field(response, "content")
    if not isinstance(content, (list, tuple)):
        raise malformed(PROVIDER, "the response has no content list")
    finish = _finish(field(response, "stop_reason"))
    texts = [
        text
        for block in cast(Sequence[object], content)
        if field(block, "type") == "text" and isinstance(text := field(block, "text"), str)
    ]
    return Completion(
        text="".join(texts),
        model=name,
        usage=usage_from(field(response, "usage")),
        latency_s=latency_s,
        finish_reason=finish,
        provider=PROVIDER,
    )


class _StreamState:
    """Folds raw stream events into text and usage."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.usage = Usage(requests=1)
        self.finish: str | None = None
        self.started = False

    def add(self, event: object) -> str:
        kind = field(event, "type")
        if kind == "message_start":
            self.started = True
            self.usage = usage_from(field(field(event, "message"), "usage"))
        elif kind == "content_block_delta":
            delta = field(event, "delta")
            text = field(delta, "text")
            if field(delta, "type") == "text_delta" and isinstance(text, str):
                self.parts.append(text)
                return text
        elif kind == "message_delta":
            self.finish = _finish(field(field(event, "delta"), "stop_reason"))
            output = as_int(field(field(event, "usage"), "output_tokens"))
            u = self.usage
            self.usage = Usage(u.input_tokens, output or u.output_tokens, u.cached_tokens, 1)
        return ""


class AnthropicModel:
    """An Anthropic Messages API model. System messages become the ``system`` field."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        client: AsyncAnthropic | None = None,
    ) -> None:
        if client is None:
            require_sdk()
        self._model = model
        self._api_key = api_key
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._default_max_tokens = default_max_tokens
        self._clients = ClientPool(self._new_client, _close_client, fixed=client)

    @property
    def name(self) -> str:
        """The canonical ``provider/model`` string."""
        return f"{PROVIDER}/{self._model}"

    @property
    def provider(self) -> str:
        """The provider name, e.g. ``openai``."""
        return PROVIDER

    async def aclose(self) -> None:
        """Close the HTTP clients opened in the running event loop."""
        await self._clients.aclose()

    def _new_client(self) -> AsyncAnthropic:
        from anthropic import AsyncAnthropic, DefaultAsyncHttpxClient

        return AsyncAnthropic(
            api_key=self._api_key,
            base_url=self._base_url,
            timeout=self._timeout_s,
            max_retries=0,
            # A plain client: the SDK's default one schedules its own close on whatever
            # loop runs when it is collected, which fails once its loop is gone.
            http_client=DefaultAsyncHttpxClient(),
        )

    def request(self, messages: Sequence[Message], settings: ModelSettings) -> dict[str, Any]:
        """The keyword arguments of ``messages.create`` for this call."""
        system, turns = split_messages(messages)
        request: dict[str, Any] = {
            "model": self._model,
            "max_tokens": settings.max_output_tokens or self._default_max_tokens,
            "messages": cast("list[MessageParam]", turns),
        }
        if system:
            request["system"] = system
        if settings.stop:
            request["stop_sequences"] = list(settings.stop)
        if settings.temperature is not None:
            # Recent SDKs no longer list `temperature`; the API still accepts it in the body.
            request["extra_body"] = {"temperature": settings.temperature}
        if settings.timeout_s is not None:
            request["timeout"] = settings.timeout_s
        return request

    async def complete(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> Completion:
        """One completion. Raises ``ProviderError`` with a typed ``kind``."""
        request = self.request(messages, settings or ModelSettings())
        started = time.perf_counter()
        try:
            async with self._clients.lease() as client:
                create: Any = client.messages.create
                response: object = await create(**request)
        except Exception as exc:
            raise map_anthropic_error(exc) from exc
        return completion_from(response, name=self.name, latency_s=time.perf_counter() - started)

    async def stream(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Stream text deltas, then ``StreamDone`` with usage."""
        request = self.request(messages, settings or ModelSettings())
        state = _StreamState()
        started = time.perf_counter()
        async with self._clients.lease() as client:
            create: Any = client.messages.create
            try:
                events: AsyncIterator[object] = await create(stream=True, **request)
            except Exception as exc:
                raise map_anthropic_error(exc) from exc
            async with aclosing(relay_chunks(events, state.add, map_anthropic_error)) as deltas:
                async for delta in deltas:
                    yield delta
        if not state.started:
            raise malformed(PROVIDER, "the stream ended without a message_start event")
        completion = Completion(
            text="".join(state.parts),
            model=self.name,
            usage=state.usage,
            latency_s=time.perf_counter() - started,
            finish_reason=state.finish,
            provider=PROVIDER,
        )
        yield StreamDone(type="done", completion=completion)


async def _close_client(client: AsyncAnthropic) -> None:
    await client.close()


def map_anthropic_error(exc: Exception) -> Exception:
    """The ``ProviderError`` for an exception raised by the ``anthropic`` SDK."""
    import anthropic

    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderError("anthropic: request timed out", kind="timeout", provider=PROVIDER)
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderError(
            f"anthropic: connection failed: {exc}", kind="connection", provider=PROVIDER
        )
    if isinstance(exc, anthropic.APIResponseValidationError):
        return malformed(PROVIDER, str(exc))
    if isinstance(exc, anthropic.APIStatusError):
        error = field(exc.body, "error")
        message = field(error, "message") if error is not None else None
        code = field(error, "type") if error is not None else None
        return status_error(
            PROVIDER,
            exc.status_code,
            message if isinstance(message, str) else exc.message,
            code=code if isinstance(code, str) else None,
            headers=cast(Any, exc.response).headers,
        )
    if isinstance(exc, anthropic.APIError):
        return ProviderError(f"anthropic: {exc.message}", kind="server", provider=PROVIDER)
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        return malformed(PROVIDER, f"invalid response body: {exc}")
    return exc


def make_anthropic(model: str, env: Mapping[str, str]) -> AnthropicModel:
    """``anthropic/<model>``: needs ``ANTHROPIC_API_KEY``; honours ``ANTHROPIC_BASE_URL``."""
    api_key = env.get("ANTHROPIC_API_KEY", "").strip()
    if not api_key:
        raise ConfigurationError(f"anthropic/{model} needs ANTHROPIC_API_KEY to be set")
    base_url = env.get("ANTHROPIC_BASE_URL", "").strip() or None
    return AnthropicModel(model, api_key=api_key, base_url=base_url)
