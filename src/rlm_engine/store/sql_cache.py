"""The persistent response cache: replies to deterministic model calls, shared by every
process on the store."""

from __future__ import annotations

from sqlalchemy import RowMapping, delete, func, select, update

from rlm_engine.store.records import CachedResponse, CacheStats
from rlm_engine.store.sql_base import SqlDb, upsert
from rlm_engine.store.tables import response_cache


def _cached(row: RowMapping) -> CachedResponse:
    return CachedResponse(
        key=row["key"],
        model=row["model"],
        text=row["text"],
        finish_reason=row["finish_reason"],
        provider=row["provider"],
        created_at=row["created_at"],
        hits=row["hits"],
    )


def get_cached_response(db: SqlDb, key: str) -> CachedResponse | None:
    with db.read() as conn:
        row = conn.execute(select(response_cache).where(response_cache.c.key == key))
        found = row.mappings().first()
    if found is None:
        return None
    with db.write() as conn:
        conn.execute(
            update(response_cache)
            .where(response_cache.c.key == key)
            .values(hits=response_cache.c.hits + 1, used_at=db.now())
        )
    return _cached(found)


def put_cached_response(db: SqlDb, entry: CachedResponse) -> None:
    now = db.now()
    values = {
        "key": entry.key,
        "model": entry.model,
        "text": entry.text,
        "finish_reason": entry.finish_reason,
        "provider": entry.provider,
        "hits": 0,
        "created_at": now,
        "used_at": now,
    }
    with db.write() as conn:
        # Two processes caching the same call: the first reply stands.
        upsert(conn, response_cache, values, keys=["key"])


def response_cache_stats(db: SqlDb) -> list[CacheStats]:
    query = (
        select(
            response_cache.c.model,
            func.count().label("entries"),
            func.coalesce(func.sum(response_cache.c.hits), 0).label("hits"),
        )
        .group_by(response_cache.c.model)
        .order_by(response_cache.c.model)
    )
    with db.read() as conn:
        rows = conn.execute(query).all()
    return [CacheStats(model=row[0], entries=int(row[1]), hits=int(row[2])) for row in rows]


def clear_response_cache(
    db: SqlDb, *, model: str | None = None, unused_for_s: float | None = None
) -> int:
    stmt = delete(response_cache)
    if model is not None:
        stmt = stmt.where(response_cache.c.model == model)
    if unused_for_s is not None:
        stmt = stmt.where(response_cache.c.used_at < db.now() - unused_for_s)
    with db.write() as conn:
        return conn.execute(stmt).rowcount
