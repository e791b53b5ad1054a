"""``rlm-orchestrator``: the job that runs the RLM loop over a prompt (``rlm jobs
orchestrate`` takes the same arguments). The work is `rlm_engine.jobs.orchestrate`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def run_orchestrate(args: argparse.Namespace) -> int:
    """The handler of ``rlm jobs orchestrate`` (and of the console script)."""
    from rlm_engine.jobs.orchestrate import orchestrate

    return orchestrate(args)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``rlm-orchestrator`` console script: exit statuses and error text as ``rlm ask``."""
    from rlm_engine.cli.main import run_handler
    from rlm_engine.jobs.args import orchestrator_parser

    args = orchestrator_parser().parse_args(argv)
    return run_handler(run_orchestrate, args)


if __name__ == "__main__":
    raise SystemExit(main())
