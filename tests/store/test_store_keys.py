"""API keys: recorded by hash, listed per tenant, revoked for good."""

from __future__ import annotations

import pytest

from rlm_engine.store import ApiKey, JournalConflictError, SqlStore


def _key(key_id: str, tenant: str, created_at: float) -> ApiKey:
    return ApiKey(
        key_id=key_id,
        tenant=tenant,
        name=f"key {key_id}",
        secret_hash="ab" * 32,
        created_at=created_at,
        revoked_at=None,
    )


def test_keys_are_added_read_and_listed_per_tenant(store: SqlStore) -> None:
    assert store.any_api_keys() is False and store.list_api_keys() == []
    k2 = store.add_api_key(_key("k2", "acme", 2.0))
    k1 = store.add_api_key(_key("k1", "acme", 1.0))
    other = store.add_api_key(_key("k3", "other", 3.0))
    assert store.any_api_keys() is True
    assert store.get_api_key("k1") == k1 and store.get_api_key("nope") is None
    assert store.list_api_keys(tenant="acme") == [k1, k2]
    assert store.list_api_keys(tenant="other") == [other]
    assert store.list_api_keys() == [k1, k2, other]
    with pytest.raises(JournalConflictError) as refused:
        store.add_api_key(_key("k1", "other", 9.0))
    assert refused.value.hint
    assert store.get_api_key("k1") == k1


def test_revoking_keeps_the_key_and_its_first_revocation(store: SqlStore) -> None:
    store.add_api_key(_key("k1", "acme", 1.0))
    assert store.revoke_api_key("k1") is True
    revoked = store.get_api_key("k1")
    assert revoked is not None and revoked.revoked_at is not None
    assert store.revoke_api_key("k1") is True
    assert store.get_api_key("k1") == revoked  # revoked when first revoked
    assert store.revoke_api_key("missing") is False
    assert store.any_api_keys() is True  # revoked keys still close the server
    assert store.list_api_keys(tenant="acme") == [revoked]
