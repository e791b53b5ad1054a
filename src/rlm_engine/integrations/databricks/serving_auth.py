"""`databricks/<endpoint>` models authenticated by the SDK instead of a token variable.

Inside a Databricks job there is often no `DATABRICKS_TOKEN`: the job's identity is what the
SDK's `Config` finds (as it finds a profile or OAuth credentials elsewhere). This model asks
that `Config` for fresh request headers before every call (`authenticate()` caches a token
and refreshes it before it expires), so no key is copied into a variable, a file or a cell;
when the headers change, the next calls use a client built with the new ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from rlm_engine.errors import ProviderError
from rlm_engine.lm.base import StreamEvent
from rlm_engine.lm.openai import DEFAULT_READ_TIMEOUT_S, OpenAIChatModel, Transport
from rlm_engine.types import Completion, Message, ModelSettings

if TYPE_CHECKING:
    from databricks.sdk.core import Config

PROVIDER = "databricks"
# The OpenAI client wants a key; the Authorization header from the SDK replaces it.
_UNUSED_KEY = "sdk-credentials"


def sdk_config(host: str | None, profile: str | None = None) -> Config | None:
    """The SDK's `Config` for `host` (None: the host the SDK finds) and `profile` of
    `~/.databrickscfg`, or None when the SDK is not installed or finds no credentials.

    The SDK reads a profile on its own only when no host is given; with a host it tries the
    environment's OAuth variables and the runtime's identity."""
    try:
        from databricks.sdk.core import Config
    except ImportError:
        return None
    try:
        return Config(host=host, profile=profile)
    except ValueError:  # no credential strategy applies
        return None


class SdkAuthServingModel:
    """A chat model on a serving endpoint, with the SDK's credentials per request."""

    def __init__(self, endpoint: str, config: Config, *, transport: Transport = "direct") -> None:
        self._endpoint = endpoint
        self._config = config
        self._transport: Transport = transport
        host = (config.host or "").rstrip("/")
        self._base_url = f"{host}/serving-endpoints"
        self.read_timeout_s = DEFAULT_READ_TIMEOUT_S
        self._headers: dict[str, str] | None = None
        self._inner: OpenAIChatModel | None = None
        self._retired: list[OpenAIChatModel] = []

    @property
    def name(self) -> str:
        return f"{PROVIDER}/{self._endpoint}"

    @property
    def provider(self) -> str:
        return PROVIDER

    @property
    def base_url(self) -> str:
        return self._base_url

    def __repr__(self) -> str:
        return f"SdkAuthServingModel({self.name!r}, base_url={self._base_url!r})"

    async def _current(self) -> OpenAIChatModel:
        try:
            headers = await asyncio.to_thread(self._config.authenticate)
        except Exception as exc:
            raise ProviderError(
                f"{PROVIDER}: the SDK could not authenticate: {exc}",
                kind="auth",
                provider=PROVIDER,
            ) from exc
        if self._inner is None or headers != self._headers:
            if self._inner is not None:
                self._retired.append(self._inner)  # calls in flight finish on it
            self._inner = OpenAIChatModel(
                self._endpoint,
                provider=PROVIDER,
                api_key=_UNUSED_KEY,
                base_url=self._base_url,
                max_tokens_param="max_tokens",
                default_headers=headers,
                transport=self._transport,
            )
            self._headers = dict(headers)
        self._inner.read_timeout_s = self.read_timeout_s
        return self._inner

    async def complete(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> Completion:
        model = await self._current()
        return await model.complete(messages, settings)

    async def stream(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> AsyncIterator[StreamEvent]:
        model = await self._current()
        async for event in model.stream(messages, settings):
            yield event

    async def aclose(self) -> None:
        """Close the clients of this event loop (current and replaced ones)."""
        models = [*self._retired, *([self._inner] if self._inner is not None else [])]
        self._retired.clear()
        for model in models:
            await model.aclose()
