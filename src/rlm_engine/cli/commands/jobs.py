"""``rlm jobs``: the lakehouse jobs from the ``rlm`` command (the same as their console
scripts, ``rlm-orchestrator``, ``rlm-executor``, ``rlm-ingestor`` and ``rlm-test``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from importlib import import_module
from typing import Any, cast

from rlm_engine.cli.commands import handler
from rlm_engine.jobs.args import ORCHESTRATOR_DESCRIPTION, add_orchestrator_options

# sub-command -> (the console script it runs, its ``main``, one line of help)
DELEGATED: dict[str, tuple[str, str, str]] = {
    "execute": (
        "rlm-executor",
        "rlm_engine.jobs.executor",
        "run one artifact from the registry (as rlm-executor)",
    ),
    "ingest": (
        "rlm-ingestor",
        "rlm_engine.jobs.ingestor",
        "poll a task source and trigger one orchestrator run per new task (as rlm-ingestor)",
    ),
    "test": (
        "rlm-test",
        "rlm_engine.jobs.test_levels",
        "run a built-in task of the graded test ladder (as rlm-test)",
    ),
}


@dataclass(frozen=True, slots=True)
class Delegate:
    """Hands the sub-command's arguments, untouched, to a console script's ``main``,
    imported only when the sub-command runs."""

    module: str

    def __call__(self, args: argparse.Namespace) -> int:
        main = import_module(self.module).main
        return cast(int, main(list(cast(list[str], args.job_args))))


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "jobs",
        help="the lakehouse jobs: orchestrate, execute, ingest, test",
        description="The lakehouse jobs, as their console scripts run them; see docs/jobs.md.",
    )
    sub = p.add_subparsers(dest="jobs_command", metavar="JOB", required=True)
    orchestrate = sub.add_parser(
        "orchestrate",
        help="run the RLM loop over a prompt (as rlm-orchestrator)",
        description=ORCHESTRATOR_DESCRIPTION,
    )
    add_orchestrator_options(orchestrate)
    orchestrate.set_defaults(handler=handler("rlm_engine.jobs.orchestrator:run_orchestrate"))
    for name, (script, module, help_text) in DELEGATED.items():
        # Every argument, --help included, goes to the script's own parser.
        delegated = sub.add_parser(
            name,
            help=help_text,
            description=f"The same as {script}; `rlm jobs {name} --help` shows its flags.",
            add_help=False,
            prefix_chars="\0",
        )
        delegated.add_argument(
            "job_args", nargs=argparse.REMAINDER, metavar="ARGS", help=f"the flags of {script}"
        )
        delegated.set_defaults(handler=Delegate(module))
