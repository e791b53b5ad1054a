"""``rlm cache``: its arguments (the implementation is `rlm_engine.cli.cache`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler
from rlm_engine.cli.commands.flags import positive_float


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "cache", help="show or clear the response cache kept in the store"
    )
    sub = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    stats = sub.add_parser("stats", help="entries and hits per model")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(handler=handler("rlm_engine.cli.cache:cache_stats"))
    clear = sub.add_parser("clear", help="forget cached replies")
    clear.add_argument("--model", metavar="M", help="only this model's (as given to rlm ask)")
    clear.add_argument(
        "--unused-for-days",
        type=positive_float("--unused-for-days"),
        metavar="D",
        help="only replies not reused for D days",
    )
    clear.add_argument("--json", action="store_true", help="print JSON")
    clear.set_defaults(handler=handler("rlm_engine.cli.cache:cache_clear"))
