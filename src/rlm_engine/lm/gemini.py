"""Adapter over the ``google-genai`` SDK (extra ``gemini``), imported lazily."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, cast

from rlm_engine.errors import ConfigurationError, MissingExtraError, ProviderError
from rlm_engine.lm.base import StreamDone, StreamEvent
from rlm_engine.lm.client_pool import ClientPool
from rlm_engine.lm.http_errors import status_error, transport_error
from rlm_engine.lm.payload import as_int, field, malformed
from rlm_engine.lm.streaming import relay_chunks
from rlm_engine.lm.tokens import estimate_usage
from rlm_engine.types import Completion, Message, ModelSettings, Usage

if TYPE_CHECKING:
    from google.genai import Client

PROVIDER = "gemini"

# Finish reasons meaning the reply was withheld by a safety or policy filter.
_FILTERED = frozenset(
    {"SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "MODEL_ARMOR"}
)
_FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length"}
_DURATION = re.compile(r"^\s*([0-9.]+)s\s*$")


def require_sdk() -> None:
    """Fail with the extra to install when ``google-genai`` is missing."""
    try:
        import google.genai  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except ImportError as exc:
        raise MissingExtraError("The gemini provider", "gemini", "google-genai") from exc


def _enum_text(value: object) -> str | None:
    raw = getattr(value, "value", value)
    return raw if isinstance(raw, str) else None


def to_request(messages: Sequence[Message], settings: ModelSettings) -> dict[str, Any]:
    """``contents`` and ``config`` for ``generate_content``: system text becomes
    ``system_instruction`` and the assistant role is called ``model``."""
    contents = [
        {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
        for m in messages
        if m.role != "system"
    ]
    config: dict[str, Any] = {}
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    if system:
        config["system_instruction"] = system
    if settings.temperature is not None:
        config["temperature"] = settings.temperature
    if settings.max_output_tokens is not None:
        config["max_output_tokens"] = settings.max_output_tokens
    if settings.stop:
        config["stop_sequences"] = list(settings.stop)
    if settings.timeout_s is not None:
        config["http_options"] = {"timeout": int(settings.timeout_s * 1000)}
    return {"contents": contents, "config": config}


def usage_from(raw: object) -> Usage | None:
    """Usage from ``usage_metadata``; thinking tokens are billed as output."""
    if raw is None:
        return None
    return Usage(
        input_tokens=as_int(field(raw, "prompt_token_count")),
        output_tokens=as_int(field(raw, "candidates_token_count"))
        + as_int(field(raw, "thoughts_token_count")),
        cached_tokens=as_int(field(raw, "cached_content_token_count")),
        requests=1,
    )


def _filtered(reason: str) -> ProviderError:
    return ProviderError(
        f"gemini: the reply was blocked ({reason})", kind="content_filter", provider=PROVIDER
    )


def read_chunk(response: object) -> tuple[str, str | None]:
    """Text and normalised finish reason of one response (or stream chunk)."""
    feedback = field(response, "prompt_feedback")
    blocked = _enum_text(field(feedback, "block_reason")) if feedback is not None else None
    if blocked and blocked != "BLOCKED_REASON_UNSPECIFIED":
        raise _filtered(blocked)
    candidates = field(response, "candidates")
    if not isinstance(candidates, (list, tuple)) or not candidates:
        return "", None
    first: object = cast(Sequence[object], candidates)[0]
    reason = _enum_text(field(first, "finish_reason"))
    if reason in _FILTERED:
        raise _filtered(reason)
    content = field(first, "content")
    parts = field(content, "parts") if content is not None else None
    texts: list[str] = []
    for part in cast(Sequence[object], parts or ()):
        text = field(part, "text")
        # Thought summaries are not part of the answer.
        if isinstance(text, str) and not field(part, "thought"):
            texts.append(text)
    finish = _FINISH_REASONS.get(reason, reason.lower()) if reason else None
    return "".join(texts), finish


def completion_from(
    response: object, *, name: str, messages: Sequence[Message], latency_s: float
) -> Completion:
    """A ``Completion`` from a ``GenerateContentResponse``."""
    text, finish = read_chunk(response)
    candidates = field(response, "candidates")
    if not isinstance(candidates, (list, tuple)) or not candidates:
        raise malformed(PROVIDER, "the response has no candidates")
    usage = usage_from(field(response, "usage_metadata")) or estimate_usage(messages, text)
    return Completion(text, name, usage, latency_s, finish, provider=PROVIDER)


class GeminiModel:
    """A Gemini model through ``client.aio.models.generate_content``."""

    def __init__(self, model: str, *, api_key: str, client: Client | None = None) -> None:
        if client is None:
            require_sdk()
        self._model = model
        self._api_key = api_key
        self._clients = ClientPool(self._new_client, _close_client, fixed=client)

    @property
    def name(self) -> str:
        """The canonical ``provider/model`` string."""
        return f"{PROVIDER}/{self._model}"

    @property
    def provider(self) -> str:
        """The provider name, e.g. ``openai``."""
        return PROVIDER

    def _new_client(self) -> Client:
        from google.genai import Client

        # vertexai=False: process variables must not switch the backend behind our back.
        return Client(api_key=self._api_key, vertexai=False)

    async def aclose(self) -> None:
        """Close the HTTP clients opened in the running event loop."""
        await self._clients.aclose()

    async def complete(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> Completion:
        """One completion. Raises ``ProviderError`` with a typed ``kind``."""
        request = to_request(messages, settings or ModelSettings())
        started = time.perf_counter()
        try:
            async with self._clients.lease() as client:
                # The SDK's signatures mention optional image types pyright cannot resolve.
                models: Any = client.aio.models
                response: object = await models.generate_content(model=self._model, **request)
        except Exception as exc:
            raise map_gemini_error(exc) from exc
        return completion_from(
            response, name=self.name, messages=messages, latency_s=time.perf_counter() - started
        )

    async def stream(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Stream text deltas, then ``StreamDone`` with usage."""
        request = to_request(messages, settings or ModelSettings())
        started = time.perf_counter()
        parts: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        async with self._clients.lease() as client:
            models: Any = client.aio.models
            try:
                chunks: AsyncIterator[object] = await models.generate_content_stream(
                    model=self._model, **request
                )
            except Exception as exc:
                raise map_gemini_error(exc) from exc

            def read(chunk: object) -> str:
                nonlocal finish, usage
                text, chunk_finish = read_chunk(chunk)
                finish = chunk_finish or finish
                usage = usage_from(field(chunk, "usage_metadata")) or usage
                if text:
                    parts.append(text)
                return text

            async with aclosing(relay_chunks(chunks, read, map_gemini_error)) as deltas:
                async for delta in deltas:
                    yield delta
        if usage is None and not parts:
            raise malformed(PROVIDER, "the stream carried no content")
        text = "".join(parts)
        completion = Completion(
            text,
            self.name,
            usage or estimate_usage(messages, text),
            time.perf_counter() - started,
            finish,
            provider=PROVIDER,
        )
        yield StreamDone(type="done", completion=completion)


async def _close_client(client: Client) -> None:
    await client.aio.aclose()


def retry_delay(details: object) -> float | None:
    """``retryDelay`` ("13s") from a Google RPC ``RetryInfo`` in an error body."""
    error = field(details, "error")
    entries = field(error, "details") if error is not None else None
    for entry in cast(Sequence[object], entries if isinstance(entries, list) else ()):
        delay = field(entry, "retryDelay")
        if isinstance(delay, str) and (match := _DURATION.match(delay)):
            return float(match.group(1))
    return None


def map_gemini_error(exc: Exception) -> Exception:
    """The ``ProviderError`` for an exception raised by ``google-genai``."""
    from google.genai import errors

    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, errors.APIError):
        message = exc.message if isinstance(exc.message, str) else str(exc)
        status = exc.code or 500
        error = status_error(PROVIDER, status, message, code=_enum_text(exc.status))
        if error.kind == "rate_limit" and error.retry_after_s is None:
            error.retry_after_s = retry_delay(getattr(exc, "details", None))
        return error
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        return malformed(PROVIDER, f"invalid response body: {exc}")
    return transport_error(exc, PROVIDER) or exc


def make_gemini(model: str, env: Mapping[str, str]) -> GeminiModel:
    """``gemini/<model>``: needs ``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``)."""
    api_key = env.get("GEMINI_API_KEY", "").strip() or env.get("GOOGLE_API_KEY", "").strip()
    if not api_key:
        raise ConfigurationError(
            f"gemini/{model} needs GEMINI_API_KEY (or GOOGLE_API_KEY) to be set"
        )
    return GeminiModel(model, api_key=api_key)
