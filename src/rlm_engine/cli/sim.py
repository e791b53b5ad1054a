"""``rlm sim serve``: the OpenAI-compatible simulator on loopback."""

from __future__ import annotations

import argparse
import asyncio
import contextlib


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
    if args.script:
        from rlm_engine.sim.script_file import ScriptFilePolicy

        policy = ScriptFilePolicy.from_file(args.script)

    def ready(server: SimServer) -> None:
        print(f"rlm sim: serving {server.url}", flush=True)
        if args.script:
            print(f"rlm sim: replies from {args.script}; try it with:", flush=True)
            print(f'  RLM_SIM_URL={server.url} rlm ask --model sim/scripted "..."', flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, config, policy, on_ready=ready))
    return 0
