"""``rlm memory``: its arguments (the implementation is `rlm_engine.cli.memory`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "memory", help="get, set and list remembered values (per session or per user)"
    )
    sub = p.add_subparsers(dest="memory_command", metavar="ACTION", required=True)

    get = sub.add_parser("get", help="print one value")
    get.add_argument("key", help="the name of the value")
    set_ = sub.add_parser("set", help="remember a value (JSON if it parses, else a string)")
    set_.add_argument("key", help="the name of the value")
    set_.add_argument("value", help="JSON, or any other text (kept as a string)")
    lst = sub.add_parser("list", help="every key and value in the scope")
    for parser, name in ((get, "memory_get"), (set_, "memory_set"), (lst, "memory_list")):
        parser.add_argument("--session", metavar="NAME", help="session scope (default: user)")
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(handler=handler(f"rlm_engine.cli.memory:{name}"))
