"""``rlm ask``: its arguments (the implementation is `rlm_engine.cli.ask`)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from rlm_engine.cli.commands import handler, prefetch

# Providers whose adapters call through their own SDK; every other one (OpenAI and the
# OpenAI-compatible servers, the simulator) sends its requests with aiohttp.
SDK_PROVIDERS = frozenset({"anthropic", "gemini", "litellm"})

_run_ask = handler("rlm_engine.cli.ask:run_ask")


def run_ask(args: argparse.Namespace) -> int:
    """`rlm_engine.cli.ask.run_ask`, with the HTTP client of the root model's first request
    imported on a thread meanwhile, while the store opens and the run is set up."""
    model: str = args.model or os.environ.get("RLM_MODEL") or ""
    if model.partition("/")[0] not in SDK_PROVIDERS:
        prefetch("aiohttp")
    return _run_ask(args)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "ask", help="answer a question over a context"
    )
    p.add_argument("question")
    p.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="PATH",
        help="file or directory; repeat for several",
    )
    p.add_argument("--model", help="root model, provider/model (default: RLM_MODEL or discovered)")
    p.add_argument("--sub-model", help="model for sub-calls (default: RLM_SUB_MODEL or --model)")
    p.add_argument("--max-iterations", type=int, default=30)
    p.add_argument("--max-depth", type=int, default=1)
    p.add_argument("--max-concurrency", type=int, default=32)
    p.add_argument("--max-sub-calls", type=int)
    p.add_argument("--budget-usd", type=float, help="stop when this much has been spent")
    p.add_argument("--max-seconds", type=float)
    p.add_argument("--cell-timeout", type=float, default=120.0)
    p.add_argument("--output-mode", choices=["truncate", "digest"], default="truncate")
    p.add_argument(
        "--fallback-model",
        action="append",
        default=[],
        metavar="M",
        help="used in order when a model fails for good (repeatable; every role)",
    )
    p.add_argument(
        "--sub-temperature",
        type=float,
        metavar="T",
        help="sampling temperature of sub-calls (default: the provider's)",
    )
    p.add_argument(
        "--response-cache",
        choices=["auto", "on", "off"],
        default="auto",
        help="reuse replies to identical sub-calls, kept in the store: "
        "at temperature 0 only (default), always, or never",
    )
    p.add_argument("--instructions", default="", help="house rules added to the root prompt")
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="NAME",
        help="extra plugin registered under the rlm_engine.plugins entry point (repeatable)",
    )
    p.add_argument(
        "--no-default-plugins",
        action="store_true",
        help="run without the safety, format, lint and telemetry plugins",
    )
    p.add_argument(
        "--isolation",
        choices=["auto", "strict", "none"],
        default="auto",
        help="OS isolation of the REPL: best available (default), required, or off",
    )
    p.add_argument(
        "--session",
        metavar="NAME",
        help="continue (or start) a named session: its REPL state, memory and history",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verbose", action="store_true", help="print every step")
    p.set_defaults(handler=run_ask)
