"""A response cache for identical calls: same model, messages and settings."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal

from rlm_engine.lm.base import LanguageModel
from rlm_engine.lm.lifecycle import aclose_model
from rlm_engine.types import Completion, Message, ModelSettings, Usage

CacheMode = Literal["auto", "on", "off"]


def cache_key(model: str, messages: Sequence[Message], settings: ModelSettings | None) -> str:
    s = settings or ModelSettings()
    payload = {
        "model": model,
        "messages": [[m.role, m.content] for m in messages],
        "settings": [s.temperature, s.max_output_tokens, list(s.stop)],
    }
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


class ResponseCache:
    """An in-memory LRU of completions by key."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Completion] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Completion | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(self, key: str, completion: Completion) -> None:
        self._entries[key] = completion
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class CachedModel:
    """Serves repeated calls from the cache. In ``auto`` mode only deterministic calls
    (temperature 0) are cached, because a sampled reply is not meant to repeat. A hit
    costs nothing: its usage is zero and its cost ``0.0``."""

    def __init__(
        self, inner: LanguageModel, cache: ResponseCache, mode: CacheMode = "auto"
    ) -> None:
        self.inner = inner
        self.cache = cache
        self.mode: CacheMode = mode
        # Identical calls in flight at once (a batch repeating a prompt) share one request.
        self._in_flight: dict[str, asyncio.Future[Completion]] = {}

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def provider(self) -> str:
        return self.inner.provider

    async def aclose(self) -> None:
        await aclose_model(self.inner)

    def _cacheable(self, settings: ModelSettings | None) -> bool:
        if self.mode == "off":
            return False
        return self.mode == "on" or (settings is not None and settings.temperature == 0)

    async def complete(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> Completion:
        if not self._cacheable(settings):
            return await self.inner.complete(messages, settings)
        key = cache_key(self.inner.name, messages, settings)
        hit = self.cache.get(key)
        if hit is None and key in self._in_flight:
            hit = await asyncio.shield(self._in_flight[key])
        if hit is not None:
            return dataclasses.replace(
                hit, usage=Usage(), cost_usd=0.0, latency_s=0.0, from_cache=True, fallbacks=()
            )
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            completion = await self.inner.complete(messages, settings)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so an unawaited failure logs nothing
            raise
        finally:
            self._in_flight.pop(key, None)
        future.set_result(completion)
        self.cache.put(key, completion)
        return completion
