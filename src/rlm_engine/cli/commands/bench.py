"""``rlm bench``: its arguments (the implementation is `rlm_engine.cli.bench`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler
from rlm_engine.cli.commands.flags import int_at_least


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
    run.add_argument(
        "--method",
        choices=("rlm", "direct", "both"),
        default="rlm",
        help="answer with an RLM, with one direct model call, or both to compare",
    )
    run.add_argument(
        "--concurrency",
        type=int_at_least("--concurrency", 1),
        default=4,
        metavar="N",
        help="tasks in flight",
    )
    run.add_argument(
        "--tasks",
        type=int_at_least("--tasks", 1),
        default=5,
        metavar="N",
        help="tasks per suite and size",
    )
    run.add_argument(
        "--seed", type=int_at_least("--seed", 0), default=0, help="seed of the generated tasks"
    )
    run.add_argument(
        "--max-iterations",
        type=int_at_least("--max-iterations", 1),
        default=30,
        metavar="N",
        help="root turns per task",
    )
    run.add_argument("--out", default="bench-results", help="output directory (resumable)")
    run.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    run.set_defaults(handler=handler("rlm_engine.cli.bench:run_command"))
    listing = sub.add_parser("list", help="list the suites")
    listing.set_defaults(handler=handler("rlm_engine.cli.bench:list_command"))
