"""``rlm databricks deploy``: build, deploy, wire, and optionally run, as the seed's script.

Steps: build the wheel into the bundle's ``dist/`` and deploy the bundle with the
``databricks`` CLI (both skipped with ``--skip-deploy``); resolve the three jobs' ids; store
them in the secret scope (created when missing); wire the executor's id into the
orchestrator's parameters and the orchestrator's into the ingestor's; with ``--run`` (or
``--test-level N``) run the orchestrator job and wait for its answer. The catalog, schema
and secret scope are read from the deployed orchestrator job's parameters, so the bundle's
variables stay the one place they are set.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlm_engine.deploy.bundle import (
    DEFAULT_SECRET_SCOPE,
    JOB_NAMES,
    ORCHESTRATOR,
    SECRET_KEYS,
)
from rlm_engine.errors import ConfigurationError

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

    from rlm_engine.deploy.run_job import JobRunOutcome
    from rlm_engine.deploy.test_level_run import LevelPrompt
    from rlm_engine.deploy.wiring import Rewired

EXIT_OK = 0
EXIT_RUN_FAILED = 1
DEFAULT_TIMEOUT_S = 3600.0


@dataclass
class DeployReport:
    """What the deploy did, for the text and the ``--json`` output."""

    wheel: str = ""
    deployed: bool = False
    job_ids: dict[str, int] = field(default_factory=dict[str, int])
    secret_scope: str = ""
    scope_created: bool = False
    rewired: list[Rewired] = field(default_factory=list["Rewired"])
    run: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "wheel": self.wheel or None,
            "deployed": self.deployed,
            "jobs": {JOB_NAMES[k]: v for k, v in self.job_ids.items()},
            "secret_scope": self.secret_scope,
            "secret_scope_created": self.scope_created,
            "rewired": [
                {
                    "job": JOB_NAMES[r.job],
                    "parameter": r.parameter,
                    "before": r.before,
                    "after": r.after,
                }
                for r in self.rewired
            ],
            "run": self.run,
        }


def _say(args: argparse.Namespace, text: str) -> None:
    """Progress on stderr in text mode; ``--json`` keeps stdout to one object."""
    if not args.json:
        print(text, file=sys.stderr, flush=True)


def _bundle_dir(args: argparse.Namespace) -> Path:
    directory = Path(args.dir).expanduser()
    if not (directory / "databricks.yml").is_file():
        raise ConfigurationError(
            f"{directory} holds no databricks.yml",
            hint="write the bundle first with `rlm databricks init`, or pass --dir DIR",
        )
    return directory


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigurationError(
                f"--param {pair!r} is not NAME=VALUE", hint="e.g. --param RLM_SESSION_ID=demo"
            )
        params[name.strip()] = value
    return params


def _deploy_bundle(args: argparse.Namespace, report: DeployReport) -> dict[str, int]:
    """Build and deploy; the job ids the CLI's summary gives (empty if it gave none)."""
    from rlm_engine.deploy.cli_tool import find_cli
    from rlm_engine.deploy.wheel import prepare_wheel

    directory = _bundle_dir(args)
    cli = find_cli(args.profile)  # before the build: a missing CLI is said at once
    wheel_arg = Path(args.wheel).expanduser() if args.wheel else None
    source = Path(args.source).expanduser() if args.source else None
    wheel = prepare_wheel(directory, wheel=wheel_arg, source=source)
    report.wheel = str(wheel)
    _say(args, f"wheel: {wheel}")
    cli.deploy(directory, args.target)
    report.deployed = True
    _say(args, f"deployed the bundle in {directory} (target {args.target})")
    try:
        return cli.job_ids(directory, args.target)
    except Exception:  # an older CLI without `bundle summary`: the names find the jobs
        return {}


def _client(profile: str | None) -> WorkspaceClient:
    from rlm_engine.integrations.databricks.workspace import workspace_client

    return workspace_client(profile)


def _current_user(w: WorkspaceClient) -> str:
    me = w.current_user.me()
    return me.user_name or ""


def _wire(args: argparse.Namespace, w: WorkspaceClient, report: DeployReport) -> dict[str, str]:
    """Resolve, store and wire the ids; returns the orchestrator's parameter defaults."""
    from rlm_engine.deploy.bundle import JOB_KEYS
    from rlm_engine.deploy.wiring import (
        parameter_defaults,
        resolve_job_ids,
        store_job_ids,
        wire_job_ids,
    )

    ids = report.job_ids
    if not all(key in ids for key in JOB_KEYS):
        ids = resolve_job_ids(w, _current_user(w))
        report.job_ids = ids
    _say(args, "jobs: " + ", ".join(f"{JOB_NAMES[k]} {ids[k]}" for k in JOB_KEYS))
    defaults = parameter_defaults(w, ids[ORCHESTRATOR])
    scope = args.secret_scope or defaults.get("RLM_SECRET_SCOPE") or DEFAULT_SECRET_SCOPE
    report.secret_scope = scope
    report.scope_created = store_job_ids(w, scope, ids)
    made = " (created)" if report.scope_created else ""
    keys = ", ".join(SECRET_KEYS[k] for k in JOB_KEYS)
    _say(args, f"secret scope {scope}{made}: stored {keys}")
    report.rewired = wire_job_ids(w, ids)
    for r in report.rewired:
        was = f" (was {r.before!r})" if r.before != r.after else ""
        _say(args, f"wired: {JOB_NAMES[r.job]} {r.parameter} = {r.after}{was}")
    if not report.rewired:
        _say(args, "wiring: the jobs' parameters already hold each other's ids")
    return defaults


def _run(
    args: argparse.Namespace, w: WorkspaceClient, report: DeployReport, defaults: Mapping[str, str]
) -> int:
    from rlm_engine.deploy.run_job import run_and_wait

    params = _parse_params(list(args.param or []))
    level: LevelPrompt | None = None
    if args.test_level is not None:
        from rlm_engine.deploy.test_level_run import upload_level

        catalog = defaults.get("RLM_CATALOG", "")
        schema = defaults.get("RLM_SCHEMA", "")
        level = upload_level(w, args.test_level, catalog=catalog, schema=schema)
        params["RLM_PROMPT"] = level.prompt
        params.setdefault("RLM_SESSION_ID", f"test-level-{level.number}")
        _say(args, f"test level {level.number} ({level.name}): data in {len(level.files)} file(s)")
    if args.prompt:
        params["RLM_PROMPT"] = args.prompt
    job_id = report.job_ids[ORCHESTRATOR]
    _say(args, f"running {JOB_NAMES[ORCHESTRATOR]} ({job_id}) ...")
    outcome = run_and_wait(
        w, job_id, params, timeout_s=args.timeout, on_state=lambda s: _say(args, f"  {s}")
    )
    report.run = _run_json(outcome, level)
    _say(args, f"run {outcome.run_id}: {outcome.result_state or outcome.life_cycle_state}")
    if outcome.page_url:
        _say(args, f"  {outcome.page_url}")
    passed = outcome.succeeded and (level is None or bool(report.run.get("passed")))
    if not args.json:
        if outcome.result.answer:
            print(outcome.result.answer)
        if outcome.result.error:
            print(f"rlm: the run failed: {outcome.result.error}", file=sys.stderr)
        if level is not None:
            mark = "PASS" if report.run.get("passed") else "FAIL"
            why = report.run.get("why") or ""
            print(f"{mark}  test level {level.number} {level.name}{': ' + why if why else ''}")
    return EXIT_OK if passed else EXIT_RUN_FAILED


def _run_json(outcome: JobRunOutcome, level: LevelPrompt | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "run_id": outcome.run_id,
        "run_page_url": outcome.page_url,
        "life_cycle_state": outcome.life_cycle_state,
        "result_state": outcome.result_state,
        "status": outcome.result.status,
        "answer": outcome.result.answer,
        "error": outcome.result.error,
        "rlm_run_id": outcome.result.run_id,
    }
    if level is not None:
        passed, why = level.judge(outcome.result.answer) if outcome.succeeded else (False, "")
        data.update(level=level.number, passed=passed, why=why or outcome.result.error)
    return data


def run_deploy(args: argparse.Namespace) -> int:
    """The handler of ``rlm databricks deploy``."""
    if args.test_level is not None:
        args.run = True
    report = DeployReport()
    if args.skip_deploy:
        _say(args, "skipping the build and the bundle deploy (--skip-deploy)")
    else:
        report.job_ids = _deploy_bundle(args, report)
    w = _client(args.profile)
    defaults = _wire(args, w, report)
    code = _run(args, w, report, defaults) if args.run else EXIT_OK
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    return code
