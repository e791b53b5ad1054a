"""``rlm bench``: its arguments (the implementation is `rlm_engine.cli.bench`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bench", help="offline benchmark suites (S-NIAH, OOLONG, Pairs, multi-doc, code QA)"
    )
    sub = p.add_subparsers(dest="bench_command", metavar="ACTION", required=True)
    run = sub.add_parser(
        "run",
        help="generate tasks, run them, write results, summary and plots",
        description="Scores with --model sim/oracle measure the engine and harness only.",
    )
    run.add_argument("--suite", required=True, help="names, comma-separated, or 'all'")
    run.add_argument("--sizes", default="16k", help="context sizes in tokens, e.g. 16k,128k,1m")
    run.add_argument("--model", help="provider/model (default: RLM_MODEL)")
    run.add_argument("--sub-model", help="model for sub-calls (default: RLM_SUB_MODEL or --model)")
    run.add_argument("--method", choices=("rlm", "direct", "both"), default="rlm")
    run.add_argument("--concurrency", type=int, default=4, help="tasks in flight")
    run.add_argument("--tasks", type=int, default=5, help="tasks per suite and size")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--max-iterations", type=int, default=30)
    run.add_argument("--out", default="bench-results", help="output directory (resumable)")
    run.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    run.set_defaults(handler=handler("rlm_engine.cli.bench:run_command"))
    listing = sub.add_parser("list", help="list the suites")
    listing.set_defaults(handler=handler("rlm_engine.cli.bench:list_command"))
