"""A response cache for identical calls: same model, messages and settings.

In memory per RLM, and optionally backed by a `PersistentCache` (the store's, for runs the
CLI records) so replies outlive the process and are shared by every process on the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal, Protocol

from rlm_engine.lm.base import LanguageModel
from rlm_engine.lm.wrapper import ModelWrapper
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


class PersistentCache(Protocol):
    """Where cached replies outlive the process. Best effort: a backing that cannot be
    reached answers ``None`` and drops saves rather than failing the call."""

    async def load(self, key: str) -> Completion | None:
        """The reply cached under ``key``, or None."""
        ...

    async def save(self, key: str, model: str, completion: Completion) -> None:
        """Keep ``completion``, the reply of ``model`` under ``key``."""
        ...


class ResponseCache:
    """An in-memory LRU of completions by key, in front of an optional persistent one."""

    def __init__(
        self, max_entries: int = 10_000, persistent: PersistentCache | None = None
    ) -> None:
        self.max_entries = max_entries
        self.persistent = persistent
        self._entries: OrderedDict[str, Completion] = OrderedDict()
        self.hits = 0
        self.misses = 0
        """Memory misses; those found in the persistent cache are also ``persistent_hits``."""
        self.persistent_hits = 0

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


class CachedModel(ModelWrapper):
    """Serves repeated calls from the cache. In ``auto`` mode only deterministic calls
    (temperature 0) are cached, because a sampled reply is not meant to repeat. A hit
    costs nothing: its usage is zero and its cost ``0.0``."""

    def __init__(
        self, inner: LanguageModel, cache: ResponseCache, mode: CacheMode = "auto"
    ) -> None:
        super().__init__(inner)
        self.cache = cache
        self.mode: CacheMode = mode
        # Identical calls in flight at once (a batch repeating a prompt) share one request.
        self._in_flight: dict[str, asyncio.Future[Completion]] = {}

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
            return _as_hit(hit)
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        persistent = self.cache.persistent
        try:
            stored = None if persistent is None else await persistent.load(key)
            completion = (
                stored if stored is not None else await self.inner.complete(messages, settings)
            )
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
        if stored is not None:
            self.cache.persistent_hits += 1
            return _as_hit(stored)
        if persistent is not None:
            await persistent.save(key, self.inner.name, completion)
        return completion


def _as_hit(completion: Completion) -> Completion:
    """A cached reply as the caller sees it: free, instant, marked as from the cache."""
    return dataclasses.replace(
        completion, usage=Usage(), cost_usd=0.0, latency_s=0.0, from_cache=True, fallbacks=()
    )
