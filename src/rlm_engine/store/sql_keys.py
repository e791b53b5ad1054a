"""API keys: which tenant a secret speaks for. Only the secret's hash is stored."""

from __future__ import annotations

from sqlalchemy import RowMapping, select, update
from sqlalchemy.exc import IntegrityError

from rlm_engine.store.errors import JournalConflictError
from rlm_engine.store.records import ApiKey
from rlm_engine.store.sql_base import SqlDb
from rlm_engine.store.tables import api_keys


def _key(row: RowMapping) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        tenant=row["tenant"],
        name=row["name"],
        secret_hash=row["secret_hash"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def add_api_key(db: SqlDb, key: ApiKey) -> ApiKey:
    values = {
        "key_id": key.key_id,
        "tenant": key.tenant,
        "name": key.name,
        "secret_hash": key.secret_hash,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }
    try:
        with db.write() as conn:
            conn.execute(api_keys.insert().values(values))
    except IntegrityError:
        raise JournalConflictError(
            f"an API key with id {key.key_id!r} already exists", hint="create a new key"
        ) from None
    return key


def get_api_key(db: SqlDb, key_id: str) -> ApiKey | None:
    with db.read() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().first()
    return None if row is None else _key(row)


def list_api_keys(db: SqlDb, tenant: str | None) -> list[ApiKey]:
    query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
    if tenant is not None:
        query = query.where(api_keys.c.tenant == tenant)
    with db.read() as conn:
        return [_key(row) for row in conn.execute(query).mappings()]


def revoke_api_key(db: SqlDb, key_id: str) -> bool:
    """Revoke a key (the first revocation's time stands); False if there is no such key."""
    with db.write() as conn:
        conn.execute(
            update(api_keys)
            .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=db.now())
        )
        found = conn.execute(select(api_keys.c.key_id).where(api_keys.c.key_id == key_id))
        return found.first() is not None


def any_api_keys(db: SqlDb) -> bool:
    # Revoked keys count: revoking the last key must not open the server to everyone.
    query = select(api_keys.c.key_id).limit(1)
    with db.read() as conn:
        return conn.execute(query).first() is not None
