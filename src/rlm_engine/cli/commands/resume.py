"""``rlm runs resume`` and ``rlm replay``: their arguments (the implementation is
`rlm_engine.cli.resume`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler


def register_resume(runs_subparsers: Any) -> None:
    """Adds ``resume`` under ``rlm runs``."""
    p: argparse.ArgumentParser = runs_subparsers.add_parser(
        "resume", help="finish an interrupted run, reusing every journaled model call"
    )
    p.add_argument("run_id", help="the run's ID (rlm runs list shows it)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verbose", action="store_true", help="print every step")
    p.add_argument(
        "--accept-divergence",
        action="store_true",
        help="when a replayed cell prints something other than its journaled output and "
        "cannot be restored from its snapshot, go on with the new output (the root model "
        "is told which outputs changed; its later calls are made anew) instead of stopping",
    )
    p.set_defaults(handler=handler("rlm_engine.cli.resume:run_resume"))


def register(subparsers: Any) -> None:
    """Adds the top-level ``replay`` command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "replay", help="re-run a recorded run offline from its journal, with no model calls"
    )
    p.add_argument("run_id", help="the run's ID (rlm runs list shows it)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verbose", action="store_true", help="print every step")
    p.set_defaults(handler=handler("rlm_engine.cli.resume:run_replay"))
