"""Adapter over ``litellm.acompletion`` (extra ``litellm``), imported lazily.

LiteLLM routes ``litellm/<provider>/<model>`` strings to many providers itself and reads
their credentials from the process environment; this adapter only translates types and
errors.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import Any, cast

from rlm_engine.errors import MissingExtraError, ProviderError, ProviderErrorKind
from rlm_engine.lm.base import StreamDone, StreamEvent
from rlm_engine.lm.http_errors import status_error, transport_error
from rlm_engine.lm.openai_shape import (
    StreamAccumulator,
    completion_from,
    messages_payload,
    settings_payload,
)
from rlm_engine.lm.payload import malformed
from rlm_engine.lm.streaming import relay_chunks
from rlm_engine.types import Completion, Message, ModelSettings

PROVIDER = "litellm"
DEFAULT_TIMEOUT_S = 600.0

# LiteLLM's exception classes, by name, most specific first (several subclass
# BadRequestError). Matching names avoids importing litellm just to classify.
_KIND_BY_CLASS: tuple[tuple[str, ProviderErrorKind], ...] = (
    ("ContextWindowExceededError", "context_length"),
    ("ContentPolicyViolationError", "content_filter"),
    ("RateLimitError", "rate_limit"),
    ("Timeout", "timeout"),
    ("APIConnectionError", "connection"),
    ("AuthenticationError", "auth"),
    ("PermissionDeniedError", "auth"),
    ("NotFoundError", "not_found"),
    ("ServiceUnavailableError", "server"),
    ("InternalServerError", "server"),
    ("APIResponseValidationError", "malformed"),
)


def load_litellm() -> Any:
    """The ``litellm`` module, or ``MissingExtraError`` naming the extra."""
    try:
        return importlib.import_module("litellm")
    except ImportError as exc:
        raise MissingExtraError("The litellm provider", "litellm", "litellm") from exc


class LiteLLMModel:
    """Any model LiteLLM can reach, e.g. ``litellm/openai/gpt-4o-mini``."""

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._litellm: Any = load_litellm()
        self._model = model
        self._api_base = api_base
        self._api_key = api_key
        self._timeout_s = timeout_s

    @property
    def name(self) -> str:
        """The canonical ``provider/model`` string."""
        return f"{PROVIDER}/{self._model}"

    @property
    def provider(self) -> str:
        """The provider name, e.g. ``openai``."""
        return PROVIDER

    def request(self, messages: Sequence[Message], settings: ModelSettings) -> dict[str, Any]:
        """Keyword arguments of ``litellm.acompletion`` for this call."""
        request = settings_payload(settings, max_tokens_param="max_tokens")
        request.update(
            model=self._model,
            messages=messages_payload(messages),
            timeout=settings.timeout_s or self._timeout_s,
            # Our RetryingModel retries; LiteLLM retrying too would multiply attempts.
            num_retries=0,
        )
        if self._api_base is not None:
            request["api_base"] = self._api_base
        if self._api_key is not None:
            request["api_key"] = self._api_key
        return request

    async def complete(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> Completion:
        """One completion. Raises ``ProviderError`` with a typed ``kind``."""
        request = self.request(messages, settings or ModelSettings())
        started = time.perf_counter()
        try:
            response: object = await self._litellm.acompletion(**request)
        except Exception as exc:
            raise map_litellm_error(exc) from exc
        return completion_from(
            response,
            name=self.name,
            provider=PROVIDER,
            messages=messages,
            latency_s=time.perf_counter() - started,
        )

    async def stream(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Stream text deltas, then ``StreamDone`` with usage."""
        request = self.request(messages, settings or ModelSettings())
        request.update(stream=True, stream_options={"include_usage": True})
        accumulator = StreamAccumulator(name=self.name, provider=PROVIDER, messages=messages)
        started = time.perf_counter()
        try:
            chunks: AsyncIterator[object] = await self._litellm.acompletion(**request)
        except Exception as exc:
            raise map_litellm_error(exc) from exc
        async with aclosing(relay_chunks(chunks, accumulator.add, map_litellm_error)) as deltas:
            async for delta in deltas:
                yield delta
        yield StreamDone(
            type="done", completion=accumulator.completion(time.perf_counter() - started)
        )


def _headers(exc: Exception) -> Mapping[str, str] | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or getattr(exc, "litellm_response_headers", None)
    return cast(Mapping[str, str], headers) if isinstance(headers, Mapping) else None


def map_litellm_error(exc: Exception) -> Exception:
    """The ``ProviderError`` for an exception raised by LiteLLM."""
    if isinstance(exc, ProviderError):
        return exc
    names = {cls.__name__ for cls in type(exc).__mro__}
    message = str(getattr(exc, "message", "") or exc)
    status = getattr(exc, "status_code", None)
    headers = _headers(exc)
    for class_name, kind in _KIND_BY_CLASS:
        if class_name in names:
            if kind == "rate_limit":
                return status_error(PROVIDER, 429, message, headers=headers)
            return ProviderError(
                f"litellm: {message}",
                kind=kind,
                provider=PROVIDER,
                status=status if isinstance(status, int) else None,
            )
    if isinstance(status, int) and status >= 400:
        return status_error(PROVIDER, status, message, headers=headers)
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        return malformed(PROVIDER, f"invalid response body: {exc}")
    return transport_error(exc, PROVIDER) or exc


def make_litellm(model: str, env: Mapping[str, str]) -> LiteLLMModel:
    """``litellm/<provider>/<model>``; ``LITELLM_API_BASE``/``LITELLM_API_KEY`` are optional
    overrides, otherwise LiteLLM finds each provider's credentials itself."""
    return LiteLLMModel(
        model,
        api_base=env.get("LITELLM_API_BASE", "").strip() or None,
        api_key=env.get("LITELLM_API_KEY", "").strip() or None,
    )
