"""``rlm serve``: its arguments (the implementation is `rlm_engine.cli.serve`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler
from rlm_engine.cli.commands.flags import int_at_least


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the HTTP API (docs at /docs)",
        description=(
            "Serve the HTTP API with uvicorn. Without any API key the server is a single "
            "local tenant and binds loopback only; `rlm keys create --tenant NAME` first "
            "to serve other hosts."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument("--port", type=int_at_least("--port", 0), default=8000, help="port to bind")
    p.add_argument(
        "--workers",
        type=int_at_least("--workers", 1),
        default=1,
        metavar="N",
        help="server processes sharing the store (Postgres is best for more than one)",
    )
    p.add_argument(
        "--open",
        action="store_true",
        help="open the web UI in a browser once the server is ready",
    )
    p.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="info",
        help="uvicorn's log level",
    )
    p.set_defaults(handler=handler("rlm_engine.cli.serve:run_serve"))
