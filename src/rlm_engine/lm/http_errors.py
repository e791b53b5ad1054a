"""Map HTTP-level provider failures to ``ProviderError`` kinds, shared by the adapters."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

from rlm_engine.errors import ProviderError, ProviderErrorKind

# A reset or disconnect in the middle of a reply is as transient as a refused connect:
# aiohttp raises ``ClientPayloadError``/``ServerDisconnectedError`` (both stacks under the
# SDK wrap them as ``ReadError``/``RemoteProtocolError``).
_CONNECTION_NAMES = (
    "ConnectError",
    "ConnectionError",
    "TransportError",
    "ClientConnectorError",
    "ClientConnectionError",
    "ClientPayloadError",
    "ServerDisconnectedError",
    "ReadError",
    "RemoteProtocolError",
)

CONTENT_FILTER_CODES = frozenset({"content_filter", "content_policy_violation"})
CONTEXT_LENGTH_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})

# Providers word this differently; these cover OpenAI, vLLM, Anthropic, Gemini and LiteLLM.
_CONTEXT_LENGTH_TEXT = re.compile(
    r"context[_ ]length|context window|maximum context|prompt is too long"
    r"|input is too long|exceeds the maximum number of tokens|too many (input )?tokens",
    re.IGNORECASE,
)
_CONTENT_FILTER_TEXT = re.compile(r"content[_ ](filter|policy|management)", re.IGNORECASE)


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``retry-after`` as seconds or an HTTP-date.

    ``headers`` must look up names case-insensitively (as ``httpx.Headers`` does) or hold
    them in lower case.
    """
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now())


def is_context_length(code: str | None, message: str) -> bool:
    """Whether a refused request was refused for exceeding the context window."""
    return code in CONTEXT_LENGTH_CODES or bool(_CONTEXT_LENGTH_TEXT.search(message))


def is_content_filter(code: str | None, message: str) -> bool:
    """Whether a refused request was refused by a content filter."""
    if code in CONTENT_FILTER_CODES:
        return True
    return code is None and bool(_CONTENT_FILTER_TEXT.search(message))


def kind_for_status(status: int, code: str | None, message: str) -> ProviderErrorKind:
    """The error kind an HTTP status (refined by the error code and message) stands for."""
    if status == 429:
        return "rate_limit"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server"
    if is_content_filter(code, message):
        return "content_filter"
    if is_context_length(code, message) or status == 413:
        return "context_length"
    return "bad_request"


def status_error(
    provider: str,
    status: int,
    message: str,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProviderError:
    """A ``ProviderError`` for an HTTP error response."""
    kind = kind_for_status(status, code, message)
    retry_after = parse_retry_after(headers) if kind in ("rate_limit", "server") else None
    return ProviderError(
        f"{provider}: HTTP {status} ({kind}): {message}",
        kind=kind,
        provider=provider,
        status=status,
        retry_after_s=retry_after,
    )


def transport_error(exc: BaseException, provider: str) -> ProviderError | None:
    """A ``timeout``/``connection`` error for transport failures of any HTTP stack.

    SDKs sit on httpx, httpx2 or aiohttp; class names identify their failures without
    importing each stack.
    """
    names = [cls.__name__ for cls in type(exc).__mro__]
    if isinstance(exc, TimeoutError) or any("Timeout" in name for name in names):
        return ProviderError(f"{provider}: request timed out", kind="timeout", provider=provider)
    if isinstance(exc, ConnectionError) or any(name in _CONNECTION_NAMES for name in names):
        return ProviderError(
            f"{provider}: connection failed: {exc}", kind="connection", provider=provider
        )
    return None
