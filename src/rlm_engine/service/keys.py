"""API keys: a tenant's secret, shown once, stored only as its sha256.

A secret reads ``rlm_<key_id>_<32 url-safe characters>``: the key id in it finds the one
stored row to compare with, so checking a key costs one lookup, not a scan; the digests
are compared with `hmac.compare_digest` so the time taken says nothing about how much of
a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from rlm_engine.errors import ConfigurationError
from rlm_engine.service.principal import Principal
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import ApiKey

SECRET_PREFIX = "rlm_"
# Tenants are path-like labels in URLs, logs and memory scopes ("acme", "team-a").
_TENANT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class KeyNotFoundError(ConfigurationError):
    """No API key has this id."""

    hint = "`rlm keys list` shows the keys"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_tenant(tenant: str) -> str:
    """``tenant`` if it is a usable tenant name, else ConfigurationError saying why."""
    if not tenant or len(tenant) > 64 or not set(tenant) <= _TENANT_CHARS:
        raise ConfigurationError(
            f"tenant {tenant!r} is not a valid name",
            hint="use 1-64 lower-case letters, digits, '-', '_' or '.'",
        )
    return tenant


def create_key(store: Store, tenant: str, name: str = "") -> tuple[ApiKey, str]:
    """A new key of ``tenant`` and its secret; the secret is not kept anywhere."""
    key_id = secrets.token_hex(8)  # hex: no "_", so the secret splits unambiguously
    secret = f"{SECRET_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"
    key = ApiKey(
        key_id=key_id,
        tenant=check_tenant(tenant),
        name=name.strip(),
        secret_hash=hash_secret(secret),
        created_at=time.time(),
    )
    return store.add_api_key(key), secret


def key_id_of(secret: str) -> str | None:
    """The key id a secret names, or None when it is not shaped like one of ours."""
    prefix, _, rest = secret.partition(SECRET_PREFIX)
    key_id, sep, random_part = rest.partition("_")
    if prefix or not sep or not key_id or not random_part:
        return None
    return key_id


def principal_of(key: ApiKey) -> Principal:
    """Who a key acts as: its tenant, and its label as the user (its id when unlabelled),
    so the user memory of a caller follows the key it uses."""
    return Principal(tenant=key.tenant, user=key.name or key.key_id)


def authenticate(store: Store, secret: str) -> Principal | None:
    """The principal of an unrevoked key whose secret is ``secret``; None otherwise."""
    key_id = key_id_of(secret.strip())
    key = store.get_api_key(key_id) if key_id else None
    # Compare even when no key was found, against a digest that matches nothing, so an
    # unknown id and a wrong secret take the same path.
    expected = key.secret_hash if key is not None else "0" * 64
    matches = hmac.compare_digest(expected, hash_secret(secret.strip()))
    if key is None or not matches or key.revoked_at is not None:
        return None
    return principal_of(key)


def revoke(store: Store, key_id: str) -> None:
    """Revoke ``key_id``; KeyNotFoundError when no key has it (revoking twice is fine)."""
    if store.get_api_key(key_id) is None:
        raise KeyNotFoundError(f"no API key with id {key_id!r}")
    store.revoke_api_key(key_id)
