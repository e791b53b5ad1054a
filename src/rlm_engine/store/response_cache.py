"""The store as the response cache's persistent backing (`lm.cache.PersistentCache`)."""

from __future__ import annotations

import asyncio
import logging
import sys

from rlm_engine.store.errors import StoreError
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import CachedResponse
from rlm_engine.types import Completion

log = logging.getLogger(__name__)


def _store_failure(exc: Exception) -> bool:
    """Whether ``exc`` is the store failing (a `StoreError`, or SQLAlchemy's own error,
    which can only exist once SQLAlchemy is loaded: so this module need not load it)."""
    if isinstance(exc, StoreError):
        return True
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.SQLAlchemyError)


class StoreResponseCache:
    """Cached replies in the store: they outlive the process and every process on the
    store shares them. A store that fails is logged and treated as a miss, because the
    cache only saves money; the journal is what must not fail silently."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def load(self, key: str) -> Completion | None:
        try:
            entry = await asyncio.to_thread(self.store.get_cached_response, key)
        except Exception as exc:
            if not _store_failure(exc):
                raise
            log.warning("response cache lookup failed, calling the model: %s", exc)
            return None
        if entry is None:
            return None
        return Completion(
            text=entry.text,
            model=entry.model,
            finish_reason=entry.finish_reason,
            provider=entry.provider,
        )

    async def save(self, key: str, model: str, completion: Completion) -> None:
        entry = CachedResponse(
            key=key,
            model=model,
            text=completion.text,
            finish_reason=completion.finish_reason,
            provider=completion.provider,
        )
        try:
            await asyncio.to_thread(self.store.put_cached_response, entry)
        except Exception as exc:
            if not _store_failure(exc):
                raise
            log.warning("response cache write failed, reply not cached: %s", exc)
