"""``rlm keys``: the API keys a server accepts, one tenant each."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rlm_engine.cli.store_access import cli_store, print_json
from rlm_engine.service.keys import create_key, revoke
from rlm_engine.store.records import ApiKey


def key_summary(key: ApiKey) -> dict[str, Any]:
    """What `rlm keys list --json` gives per key: never the secret (nor its hash)."""
    return {
        "key_id": key.key_id,
        "tenant": key.tenant,
        "name": key.name,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def keys_create(args: argparse.Namespace) -> int:
    with cli_store() as store:
        key, secret = create_key(store, args.tenant, args.name)
    if args.json:
        print_json({**key_summary(key), "secret": secret})
        return 0
    print(secret)
    print(
        f"key {key.key_id} of tenant {key.tenant!r}: the secret above is shown only now; "
        "send it as `Authorization: Bearer <secret>`",
        file=sys.stderr,
    )
    return 0


def keys_list(args: argparse.Namespace) -> int:
    with cli_store() as store:
        keys = store.list_api_keys(tenant=args.tenant)
    if args.json:
        print_json([key_summary(k) for k in keys])
        return 0
    if not keys:
        print("no API keys; `rlm keys create --tenant NAME` makes one", file=sys.stderr)
    for k in keys:
        state = f"revoked {_when(k.revoked_at)}" if k.revoked_at else "active"
        label = f" ({k.name})" if k.name else ""
        print(f"{k.key_id}  {k.tenant:<16} created {_when(k.created_at)}  {state}{label}")
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    with cli_store() as store:
        revoke(store, args.key_id)
    if args.json:
        print_json({"key_id": args.key_id, "revoked": True})
    else:
        print(f"revoked key {args.key_id}", file=sys.stderr)
    return 0
