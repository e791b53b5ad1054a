"""A lean HTTP path for non-streaming chat completions on OpenAI-compatible servers.

The SDK path costs about a millisecond of CPU per call (request options, header and URL
models, response wrappers). A fan-out of hundreds of concurrent sub-calls runs on one
event loop, so that CPU turns into wall time: 256 calls at 64 in flight took 1.7x the
ideal time through the SDK and 1.1-1.2x this way. Errors map to the same typed kinds as
the SDK path (``http_errors`` is shared), and streaming stays on the SDK.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from rlm_engine.errors import ProviderError
from rlm_engine.lm.client_pool import ClientPool
from rlm_engine.lm.http_errors import status_error, transport_error
from rlm_engine.lm.payload import malformed

if TYPE_CHECKING:
    import aiohttp

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
USER_AGENT = "rlm-engine (OpenAI-compatible)"


class DirectChat:
    """POSTs ``/chat/completions`` with aiohttp and returns the decoded JSON body."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str | None,
        api_key: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._provider = provider
        self._url = f"{(base_url or OPENAI_DEFAULT_URL).rstrip('/')}/chat/completions"
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **(headers or {}),
        }
        # The headers are the sessions' defaults, so a request does not merge its own in.
        self._sessions: ClientPool[aiohttp.ClientSession] = ClientPool(
            lambda: _new_session(self._headers), _close_session, per_client=1024
        )
        self._timeouts: dict[tuple[float, float | None], aiohttp.ClientTimeout] = {}

    async def aclose(self) -> None:
        """Close the sessions opened in the running event loop."""
        await self._sessions.aclose()

    async def post(
        self, body: Mapping[str, Any], *, timeout_s: float, read_timeout_s: float | None = None
    ) -> object:
        """The decoded reply. Raises ``ProviderError`` with a typed ``kind``.

        ``timeout_s`` bounds the whole request; ``read_timeout_s`` the silence between two
        reads of the reply, so a server that sends its headers and then stalls is given up
        on long before the whole request's time is out."""
        import aiohttp

        data = json.dumps(body, ensure_ascii=False).encode()
        key = (timeout_s, read_timeout_s)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=timeout_s, sock_read=read_timeout_s
            )
        try:
            async with (
                self._sessions.lease() as session,
                session.post(self._url, data=data, timeout=timeout) as resp,
            ):
                raw = await resp.read()
                if resp.status >= 400:
                    message, code = _error_fields(raw, resp.reason or "")
                    raise status_error(
                        self._provider, resp.status, message, code=code, headers=resp.headers
                    )
        except ProviderError:
            raise
        except Exception as exc:
            mapped = transport_error(exc, self._provider)
            if mapped is None:
                raise
            raise mapped from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise malformed(self._provider, "the body is not JSON") from exc


def _new_session(headers: Mapping[str, str]) -> aiohttp.ClientSession:
    import aiohttp

    # No connection cap here: the engine's own semaphore bounds the fan-out.
    return aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=0))


async def _close_session(session: aiohttp.ClientSession) -> None:
    await session.close()


def _error_fields(raw: bytes, fallback: str) -> tuple[str, str | None]:
    """The message and code of an OpenAI-style error body, tolerating anything else."""
    try:
        body: object = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:500] or fallback, None
    error = cast(dict[str, Any], body).get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return fallback, None
    fields = cast(dict[str, Any], error)
    message = fields.get("message")
    code = fields.get("code")
    return (
        message if isinstance(message, str) and message else fallback,
        code if isinstance(code, str) else None,
    )
