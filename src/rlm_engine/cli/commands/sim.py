"""``rlm sim serve``: its arguments (the implementation is `rlm_engine.cli.sim`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "sim", help="OpenAI-compatible simulator for tests and benchmarks"
    )
    sub = p.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    serve = sub.add_parser("serve", help="serve /v1/chat/completions on loopback")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    serve.add_argument("--ttft", type=float, default=0.0, help="seconds to the first token")
    serve.add_argument("--tokens-per-s", type=float, help="output rate (default: instant)")
    serve.add_argument("--max-concurrent", type=int, help="above this, reply 429")
    serve.add_argument(
        "--policy",
        choices=("echo", "fanout"),
        default="echo",
        help="echo the last message, or fan out sub-calls (for peer benchmarks)",
    )
    serve.set_defaults(handler=handler("rlm_engine.cli.sim:run_serve"))
