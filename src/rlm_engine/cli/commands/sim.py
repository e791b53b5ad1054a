"""``rlm sim serve``: its arguments (the implementation is `rlm_engine.cli.sim`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler
from rlm_engine.cli.commands.flags import float_between, int_at_least, port, positive_float


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "sim", help="OpenAI-compatible simulator for tests and benchmarks"
    )
    sub = p.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    serve = sub.add_parser("serve", help="serve /v1/chat/completions on loopback")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument(
        "--port", type=port("--port"), default=8765, help="port to listen on; 0 picks a free one"
    )
    serve.add_argument(
        "--ttft",
        type=float_between("--ttft", 0.0, 3600.0),
        default=0.0,
        metavar="S",
        help="seconds to the first token",
    )
    serve.add_argument(
        "--tokens-per-s",
        type=positive_float("--tokens-per-s"),
        metavar="N",
        help="output rate (default: instant)",
    )
    serve.add_argument(
        "--max-concurrent",
        type=int_at_least("--max-concurrent", 1),
        metavar="N",
        help="above this many requests in flight, reply 429 (default: no limit)",
    )
    replies = serve.add_mutually_exclusive_group()
    replies.add_argument(
        "--policy",
        choices=("echo", "fanout"),
        default="echo",
        help="echo the last message, or fan out sub-calls (for peer benchmarks) "
        "(default: %(default)s)",
    )
    replies.add_argument(
        "--script",
        metavar="FILE",
        help='reply from a JSONL file, one reply a line: {"root": "..."} or {"sub": "..."} '
        "(example: docs/examples/scripted.jsonl)",
    )
    serve.set_defaults(handler=handler("rlm_engine.cli.sim:run_serve"))
