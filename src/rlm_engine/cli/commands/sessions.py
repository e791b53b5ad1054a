"""``rlm sessions``: its arguments (the implementation is `rlm_engine.cli.sessions`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "sessions", help="list, show and delete named sessions"
    )
    sub = p.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)

    lst = sub.add_parser("list", help="sessions, most recently used first")
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--limit", type=int, default=100, metavar="N")
    lst.set_defaults(handler=handler("rlm_engine.cli.sessions:sessions_list"))

    show = sub.add_parser("show", help="one session: its data, memory and runs")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=handler("rlm_engine.cli.sessions:sessions_show"))

    delete = sub.add_parser("delete", help="delete a session and its memory (runs stay)")
    delete.add_argument("name")
    delete.add_argument("--json", action="store_true")
    delete.set_defaults(handler=handler("rlm_engine.cli.sessions:sessions_delete"))
