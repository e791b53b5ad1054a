"""``rlm databricks``: its arguments (the implementation is `rlm_engine.deploy`).

``init`` writes the Databricks Asset Bundle of the three jobs, ``deploy`` builds, deploys
and wires them (``--run`` / ``--test-level N`` / ``--skip-deploy`` as the source design's
deploy script), ``check`` says what the workspace still lacks. Stdlib only here, and the
defaults come from `rlm_engine.deploy.bundle`'s constants, written out so that building the
parser never imports it.
"""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler
from rlm_engine.cli.commands.flags import int_at_least, positive_float

COMPUTES = ("serverless", "cluster", "job-cluster")


def _workspace_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        metavar="NAME",
        help="profile of ~/.databrickscfg (default: the SDK's own order: DATABRICKS_HOST "
        "and DATABRICKS_TOKEN, then the DEFAULT profile, OAuth, a job's identity)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _init(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "init",
        help="write a Databricks Asset Bundle of the three jobs into a project",
        description="Write databricks.yml and resources/*.job.yml: the orchestrator, "
        "executor and ingestor as Python wheel tasks on the rlm-engine wheel, with their "
        "job parameters and the jobs' ids wired to each other.",
    )
    p.add_argument("--dir", default=".", metavar="DIR", help="the project to write into")
    p.add_argument("--catalog", default="main", help="catalog of the tables and the Volume")
    p.add_argument("--schema", default="rlm", help="schema of the tables and the Volume")
    p.add_argument(
        "--model",
        default="databricks/databricks-claude-sonnet-4",
        help="the root model of the orchestrator job (databricks/<serving endpoint>)",
    )
    p.add_argument("--secret-scope", default="rlm-secrets", help="secret scope of the jobs")
    p.add_argument(
        "--compute",
        choices=COMPUTES,
        default="serverless",
        help="serverless: a serverless environment per task; cluster: an existing cluster "
        "(--cluster-id); job-cluster: a new single-node cluster per run (--node-type)",
    )
    p.add_argument("--cluster-id", default="", metavar="ID", help="for --compute cluster")
    p.add_argument("--node-type", default="", metavar="TYPE", help="for --compute job-cluster")
    p.add_argument(
        "--spark-version",
        default="16.4.x-scala2.12",
        metavar="VERSION",
        help="Databricks Runtime of --compute job-cluster",
    )
    p.add_argument("--host", default="", metavar="URL", help="workspace URL of the targets")
    p.add_argument("--name", default="rlm-engine", help="the bundle's name")
    p.add_argument(
        "--ingest-source",
        default="",
        metavar="KIND:ARG",
        help="the ingestor's --source (default: delta:CATALOG.SCHEMA.tasks)",
    )
    p.add_argument("--force", action="store_true", help="overwrite the bundle's files")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=handler("rlm_engine.deploy.init_bundle:run_init"))


def _deploy(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "deploy",
        help="build the wheel, deploy the bundle, wire the jobs' ids; --run runs it",
        description="Build the rlm-engine wheel into DIR/dist, deploy the bundle with the "
        "databricks CLI, resolve the three jobs' ids, store them in the secret scope, and "
        "wire the executor's id into the orchestrator's parameters and the orchestrator's "
        "into the ingestor's. --run then runs the orchestrator job and waits for its answer.",
    )
    p.add_argument("--dir", default=".", metavar="DIR", help="the bundle's directory")
    p.add_argument("--target", default="dev", help="the bundle target to deploy")
    p.add_argument(
        "--skip-deploy",
        action="store_true",
        help="build and deploy nothing: wire (and run) the jobs already in the workspace",
    )
    p.add_argument("--wheel", metavar="PATH", help="deploy this wheel instead of building one")
    p.add_argument(
        "--source",
        metavar="DIR",
        help="the rlm-engine source tree to build (default: DIR, else this checkout)",
    )
    p.add_argument(
        "--secret-scope",
        metavar="NAME",
        help="where the jobs' ids go (default: the orchestrator job's RLM_SECRET_SCOPE)",
    )
    run = p.add_argument_group("run")
    run.add_argument("--run", action="store_true", help="run the orchestrator job and wait")
    run.add_argument(
        "--test-level",
        type=int_at_least("--test-level", 1),
        metavar="N",
        help="run with test level N's prompt, its data uploaded to the Volume, and judge "
        "the answer (implies --run; see rlm-test --list)",
    )
    run.add_argument("--prompt", metavar="TEXT", help="the run's prompt (RLM_PROMPT)")
    run.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="a job parameter of the run, e.g. RLM_SESSION_ID=demo (repeat for several)",
    )
    run.add_argument(
        "--timeout",
        type=positive_float("--timeout"),
        default=3600.0,
        metavar="S",
        help="seconds to wait for the run",
    )
    _workspace_flags(p)
    p.set_defaults(handler=handler("rlm_engine.deploy.deploy:run_deploy"))


def _check(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "check",
        help="check host, auth, compute, secret scope, jobs and tables; say what is missing",
        description="Check what the jobs need from the workspace and say, for each thing "
        "missing, how to fix it. Exit status 0 when nothing is missing, 1 otherwise. The "
        "catalog, schema and secret scope default to the deployed orchestrator job's.",
    )
    p.add_argument("--catalog", metavar="NAME", help="catalog of the tables")
    p.add_argument("--schema", metavar="NAME", help="schema of the tables")
    p.add_argument("--secret-scope", metavar="NAME", help="the jobs' secret scope")
    p.add_argument(
        "--warehouse-id",
        metavar="ID",
        help="SQL warehouse to check the tables with (default: discovered, a running one first)",
    )
    p.add_argument("--cluster-id", metavar="ID", help="also check this cluster")
    _workspace_flags(p)
    p.set_defaults(handler=handler("rlm_engine.deploy.check:run_check"))


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "databricks",
        help="deploy the jobs to Databricks: init, deploy, check",
        description="Deploy the lakehouse jobs to a Databricks workspace; see docs/databricks.md.",
    )
    sub = p.add_subparsers(dest="databricks_command", metavar="ACTION", required=True)
    _init(sub)
    _deploy(sub)
    _check(sub)
