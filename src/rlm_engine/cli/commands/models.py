"""``rlm models``: its arguments (the implementation is `rlm_engine.cli.models`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "models", help="list providers and whether they are configured"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=handler("rlm_engine.cli.models:run_models"))
