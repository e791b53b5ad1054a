"""The flags of the lakehouse jobs, shared by their console scripts and ``rlm jobs``.

Every job parameter's flag defaults to None, so that an unset flag leaves the variable
(``RLM_*``, then ``ADK_*``) or the default to decide (`JobSettings.with_flags`). Stdlib and
the CLI's argument modules only: building a parser stays cheap.
"""

from __future__ import annotations

import argparse

from rlm_engine.cli.commands.ask import add_run_options
from rlm_engine.cli.commands.flags import Parser
from rlm_engine.jobs.settings import MODES

EXECUTORS = ("process", "inline")

ORCHESTRATOR_DESCRIPTION = (
    "Run one RLM loop over a prompt as a lakehouse job: its cells become artifacts run by "
    "rlm-executor, and its run, telemetry, artifacts and session state land in Delta "
    "tables. Every job flag can also be set by its RLM_* variable, and --max-iterations "
    "by RLM_MAX_ITERATIONS (flags win; see docs/jobs.md)."
)


def add_lakehouse_options(p: argparse.ArgumentParser) -> None:
    """Where the tables live: mode, catalog, schema, or an explicit location."""
    group = p.add_argument_group("lakehouse")
    group.add_argument(
        "--mode",
        choices=MODES,
        help="where the jobs run: 'local' (processes here, tables under RLM_HOME) or "
        "'databricks' (job runs, Unity Catalog tables and Volumes; env RLM_JOBS_MODE; "
        "default: local)",
    )
    group.add_argument(
        "--catalog",
        metavar="NAME",
        help="catalog of the tables (env RLM_CATALOG, ADK_DELTA_CATALOG; default: rlm)",
    )
    group.add_argument(
        "--schema",
        metavar="NAME",
        help="schema of the tables (env RLM_SCHEMA, ADK_DELTA_SCHEMA; default: jobs)",
    )
    group.add_argument(
        "--lakehouse",
        metavar="PATH",
        help="root of the Delta tables, a directory or an object-store URI (env "
        "RLM_LAKEHOUSE; default: RLM_HOME/lakehouse/CATALOG/SCHEMA)",
    )


def add_job_options(p: argparse.ArgumentParser) -> None:
    """The parameters every job takes: the lakehouse, the user and the jobs' ids."""
    add_lakehouse_options(p)
    group = p.add_argument_group("job")
    group.add_argument(
        "--user-id",
        metavar="ID",
        help="user the runs and session state belong to (env RLM_USER_ID, ADK_USER_ID; "
        "default: job_user)",
    )
    group.add_argument(
        "--executor-job-id",
        metavar="ID",
        help="the executor job's id, for Databricks mode (env RLM_EXECUTOR_JOB_ID, "
        "ADK_EXECUTOR_JOB_ID); unused in local mode",
    )
    group.add_argument(
        "--orchestrator-job-id",
        metavar="ID",
        help="the orchestrator job's id, for Databricks mode (env RLM_ORCHESTRATOR_JOB_ID, "
        "ADK_ORCHESTRATOR_JOB_ID); unused in local mode",
    )
    group.add_argument(
        "--secret-scope",
        metavar="NAME",
        help="Databricks mode: the secret scope the job loads its secrets from (env "
        "RLM_SECRET_SCOPE, ADK_SECRET_SCOPE; default: rlm-secrets)",
    )


def add_prompt_options(p: argparse.ArgumentParser) -> None:
    """What one orchestrator run asks, and in which session."""
    group = p.add_argument_group("prompt and session")
    group.add_argument(
        "--prompt",
        metavar="TEXT",
        help="the prompt; wins when not empty (env RLM_PROMPT, ADK_PROMPT)",
    )
    group.add_argument(
        "--prompt-file",
        metavar="PATH",
        help="read the prompt from this file when no prompt is given (env RLM_PROMPT_FILE, "
        "ADK_PROMPT_FILE; default: RLM_DEFAULT_PROMPT_FILE, else RLM_HOME/task.txt)",
    )
    group.add_argument(
        "--session-id",
        metavar="ID",
        help="session whose state, memory and unfinished run this run continues; created "
        "if missing (env RLM_SESSION_ID, ADK_SESSION_ID; default: session_001)",
    )
    group.add_argument(
        "--dedupe-key",
        metavar="KEY",
        help="exactly once: if a run recorded with KEY has finished, print its answer and "
        "start nothing; if it was interrupted, resume it",
    )


def add_orchestrator_options(p: argparse.ArgumentParser) -> None:
    """Every flag of the orchestrator: job, prompt, executor, and `rlm ask`'s run flags."""
    add_job_options(p)
    add_prompt_options(p)
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="process",
        help="'process': each cell is an artifact run by a separate rlm-executor; "
        "'inline': cells run in this process's own sandbox",
    )
    add_run_options(p)
    # The job's iteration limit also comes from RLM_MAX_ITERATIONS: unset stays None.
    p.set_defaults(max_iterations=None)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verbose", action="store_true", help="print every step")


def orchestrator_parser(prog: str = "rlm-orchestrator") -> argparse.ArgumentParser:
    """The parser of the ``rlm-orchestrator`` console script."""
    parser = Parser(prog=prog, description=ORCHESTRATOR_DESCRIPTION)
    add_orchestrator_options(parser)
    return parser
