"""``rlm sim serve``: the OpenAI-compatible simulator on loopback."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any


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
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from rlm_engine.sim.config import SimConfig
    from rlm_engine.sim.oracle_fanout import FanoutPolicy
    from rlm_engine.sim.policies import EchoPolicy, Policy
    from rlm_engine.sim.runner import serve
    from rlm_engine.sim.server import SimServer

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print("rlm sim: serving beyond loopback; the simulator has no authentication", flush=True)
    config = SimConfig(
        ttft_s=args.ttft, tokens_per_s=args.tokens_per_s, max_concurrent=args.max_concurrent
    )

    policy: Policy = FanoutPolicy() if args.policy == "fanout" else EchoPolicy()

    def ready(server: SimServer) -> None:
        print(f"rlm sim: serving {server.url}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, config, policy, on_ready=ready))
    return 0
