"""``rlm sessions``: its arguments (the implementation is `rlm_engine.cli.sessions`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler
from rlm_engine.cli.commands.flags import int_at_least


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "sessions", help="list, show and delete named sessions"
    )
    sub = p.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)

    lst = sub.add_parser("list", help="sessions, most recently used first")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.add_argument(
        "--limit",
        type=int_at_least("--limit", 1),
        default=100,
        metavar="N",
        help="list at most N sessions",
    )
    lst.set_defaults(handler=handler("rlm_engine.cli.sessions:sessions_list"))

    show = sub.add_parser("show", help="one session: its data, memory and runs")
    show.add_argument("name", help="the session's name")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=handler("rlm_engine.cli.sessions:sessions_show"))

    delete = sub.add_parser("delete", help="delete a session and its memory (runs stay)")
    delete.add_argument("name", help="the session's name")
    delete.add_argument("--json", action="store_true", help="print JSON")
    delete.set_defaults(handler=handler("rlm_engine.cli.sessions:sessions_delete"))
