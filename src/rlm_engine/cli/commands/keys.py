"""``rlm keys``: its arguments (the implementation is `rlm_engine.cli.keys`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "keys", help="create, list and revoke the server's API keys"
    )
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    create = sub.add_parser("create", help="a new key of a tenant; its secret is shown once")
    create.add_argument("--tenant", required=True, help="the tenant the key acts for")
    create.add_argument("--name", default="", help="a label (who or what uses the key)")
    create.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(handler=handler("rlm_engine.cli.keys:keys_create"))

    lst = sub.add_parser("list", help="the keys (never their secrets)")
    lst.add_argument("--tenant", default=None, help="only this tenant's keys")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(handler=handler("rlm_engine.cli.keys:keys_list"))

    revoke = sub.add_parser("revoke", help="revoke a key: requests with it get 401")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id (see `rlm keys list`)")
    revoke.add_argument("--json", action="store_true", help="print JSON")
    revoke.set_defaults(handler=handler("rlm_engine.cli.keys:keys_revoke"))
