"""``rlm mcp``: its arguments (the implementation is `rlm_engine.cli.mcp`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "mcp",
        help="serve the MCP tools (rlm_ask, rlm_runs, rlm_resume) over stdio",
        description=(
            "Serve an MCP server on stdin/stdout for coding agents and assistants: runs "
            "are recorded in the local store as the local tenant. Paths a client names "
            "must lie under a root: the --root directories, else the client's own roots, "
            "else the directory this command started in."
        ),
    )
    p.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory clients may read (repeatable); replaces the default",
    )
    p.set_defaults(handler=handler("rlm_engine.cli.mcp:run_mcp"))
