"""The persistent response cache, on SQLite and on the real Postgres."""

from __future__ import annotations

import asyncio
import logging
from unittest import mock

import pytest
from sqlalchemy.exc import OperationalError

from rlm_engine.store import CachedResponse, SqlStore
from rlm_engine.store.response_cache import StoreResponseCache
from rlm_engine.types import Completion, Usage


def entry(key: str, model: str = "openai/a", text: str = "reply") -> CachedResponse:
    return CachedResponse(key=key, model=model, text=text, finish_reason="stop", provider="openai")


def test_a_cached_reply_is_found_and_its_hits_counted(store: SqlStore) -> None:
    assert store.get_cached_response("k1") is None
    store.put_cached_response(entry("k1", text="x" * 5000))
    first = store.get_cached_response("k1")
    assert first is not None
    assert (first.text, first.model, first.finish_reason) == ("x" * 5000, "openai/a", "stop")
    store.get_cached_response("k1")
    [stats] = store.response_cache_stats()
    assert (stats.model, stats.entries, stats.hits) == ("openai/a", 1, 2)


def test_the_first_reply_cached_under_a_key_stands(store: SqlStore) -> None:
    store.put_cached_response(entry("k", text="first"))
    store.put_cached_response(entry("k", text="second"))
    found = store.get_cached_response("k")
    assert found is not None and found.text == "first"


def test_clear_by_model_and_by_disuse(store: SqlStore) -> None:
    store.put_cached_response(entry("a1", model="openai/a"))
    store.put_cached_response(entry("a2", model="openai/a"))
    store.put_cached_response(entry("b1", model="openai/b"))
    assert store.clear_response_cache(model="openai/b") == 1
    assert [(s.model, s.entries) for s in store.response_cache_stats()] == [("openai/a", 2)]
    assert store.clear_response_cache(unused_for_s=3600) == 0  # used moments ago
    with mock.patch("time.time", return_value=10**11):
        assert store.clear_response_cache(unused_for_s=3600) == 2
    assert store.response_cache_stats() == []


def test_the_store_backing_round_trips_a_completion(store: SqlStore) -> None:
    backing = StoreResponseCache(store)
    reply = Completion(
        text="hello",
        model="gpt-x-2026",
        usage=Usage(input_tokens=10, output_tokens=2),
        finish_reason="stop",
        cost_usd=0.5,
        provider="openai",
    )

    async def round_trip() -> Completion | None:
        assert await backing.load("k") is None
        await backing.save("k", "openai/gpt-x", reply)
        return await backing.load("k")

    loaded = asyncio.run(round_trip())
    assert loaded is not None
    assert (loaded.text, loaded.model, loaded.finish_reason, loaded.provider) == (
        "hello",
        "openai/gpt-x",
        "stop",
        "openai",
    )
    assert loaded.usage == Usage() and loaded.cost_usd is None


def test_a_failing_store_is_a_logged_miss_not_a_failed_call(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    backing = StoreResponseCache(store)
    down = OperationalError("SELECT", {}, Exception("server closed the connection"))

    async def both() -> Completion | None:
        with mock.patch.object(store, "put_cached_response", side_effect=down):
            await backing.save("k", "m", Completion(text="t", model="m"))
        with mock.patch.object(store, "get_cached_response", side_effect=down):
            return await backing.load("k")

    with caplog.at_level(logging.WARNING, logger="rlm_engine.store.response_cache"):
        assert asyncio.run(both()) is None
    messages = [r.getMessage() for r in caplog.records]
    assert any("write failed" in m for m in messages)
    assert any("lookup failed" in m for m in messages)
