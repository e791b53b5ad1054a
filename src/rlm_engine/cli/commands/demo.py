"""``rlm demo``: its arguments (the implementation is `rlm_engine.cli.demo`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler
from rlm_engine.cli.commands.flags import int_at_least


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "demo", help="run an RLM offline with a scripted model"
    )
    p.add_argument(
        "--lines",
        type=int_at_least("--lines", 1),
        default=60_000,
        metavar="N",
        help="size of the generated log",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verbose", action="store_true", help="print every step")
    p.set_defaults(handler=handler("rlm_engine.cli.demo:run_demo"))
