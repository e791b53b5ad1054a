"""``rlm databricks check``: what the jobs need from a workspace, and how to fix each gap.

Each check is a `Finding`: what was looked at, whether it is there, what was seen, and
the fix when it is not. The checks go on after a failure wherever they can, so one run
lists every gap; only a failed authentication stops them (nothing else can be asked).
The catalog, schema, secret scope and model default to the deployed orchestrator job's
parameters, so a check looks where the jobs will look.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rlm_engine.deploy.bundle import (
    DEFAULT_CATALOG,
    DEFAULT_SCHEMA,
    DEFAULT_SECRET_SCOPE,
    JOB_KEYS,
    JOB_NAMES,
    ORCHESTRATOR,
    SECRET_KEYS,
    WIRING,
)
from rlm_engine.errors import RLMError

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

EXIT_OK = 0
EXIT_MISSING = 1
VOLUME = "artifacts"


@dataclass(frozen=True, slots=True)
class Finding:
    what: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass
class Target:
    """Where the jobs keep their state, as the flags or the deployed jobs say."""

    catalog: str
    schema: str
    secret_scope: str
    model: str = ""
    job_ids: dict[str, int] | None = None


def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_auth(profile: str | None) -> tuple[WorkspaceClient | None, list[Finding]]:
    """Host and authentication; the client when both work."""
    from rlm_engine.integrations.databricks.workspace import workspace_client

    auth_fix = (
        "set DATABRICKS_HOST and DATABRICKS_TOKEN, or pass --profile NAME of "
        "~/.databrickscfg (`databricks auth login --host URL` writes one)"
    )
    try:
        w = workspace_client(profile)
        host = w.config.host or ""
    except RLMError as exc:
        return None, [Finding("host", False, _message(exc), exc.hint or auth_fix)]
    except Exception as exc:
        return None, [Finding("host", False, _message(exc), auth_fix)]
    found = [Finding("host", True, host)]
    try:
        me = w.current_user.me()
    except Exception as exc:
        hint = "the token or profile is not accepted: make a new token, or " + auth_fix
        return None, [*found, Finding("auth", False, _message(exc), hint)]
    return w, [*found, Finding("auth", True, me.user_name or me.display_name or "(no name)")]


def check_jobs(w: WorkspaceClient, args: argparse.Namespace) -> tuple[Target, list[Finding]]:
    """The three jobs, their wiring, and the target their parameters name."""
    from rlm_engine.deploy.wiring import find_job_id, parameter_defaults

    user = w.current_user.me().user_name or ""
    findings: list[Finding] = []
    ids: dict[str, int] = {}
    for key in JOB_KEYS:
        try:
            ids[key] = find_job_id(w, key, user)
            findings.append(Finding(f"job {JOB_NAMES[key]}", True, f"job id {ids[key]}"))
        except RLMError as exc:
            findings.append(Finding(f"job {JOB_NAMES[key]}", False, _message(exc), exc.hint))
    defaults = parameter_defaults(w, ids[ORCHESTRATOR]) if ORCHESTRATOR in ids else {}
    for job_key, parameter, target_key in WIRING:
        if job_key not in ids or target_key not in ids:
            continue
        have = parameter_defaults(w, ids[job_key]).get(parameter, "")
        want = str(ids[target_key])
        findings.append(
            Finding(
                f"wiring {JOB_NAMES[job_key]} {parameter}",
                have == want,
                f"{have or '(unset)'}" + ("" if have == want else f", the job's id is {want}"),
                "" if have == want else "rlm databricks deploy --skip-deploy (wires the ids)",
            )
        )
    target = Target(
        catalog=args.catalog or defaults.get("RLM_CATALOG") or DEFAULT_CATALOG,
        schema=args.schema or defaults.get("RLM_SCHEMA") or DEFAULT_SCHEMA,
        secret_scope=args.secret_scope or defaults.get("RLM_SECRET_SCOPE") or DEFAULT_SECRET_SCOPE,
        model=defaults.get("RLM_MODEL", ""),
        job_ids=ids,
    )
    return target, findings


def check_cluster(w: WorkspaceClient, cluster_id: str) -> Finding:
    try:
        cluster = w.clusters.get(cluster_id)
    except Exception as exc:
        return Finding(
            f"cluster {cluster_id}",
            False,
            _message(exc),
            "give an existing cluster's id (`databricks clusters list`)",
        )
    state = cluster.state.value if cluster.state else "UNKNOWN"
    name = cluster.cluster_name or cluster_id
    if state in ("RUNNING", "RESIZING"):
        return Finding(f"cluster {cluster_id}", True, f"{name}: {state}")
    return Finding(
        f"cluster {cluster_id}",
        state in ("TERMINATED", "PENDING", "RESTARTING"),
        f"{name}: {state} (a job run starts a terminated cluster, which takes minutes)",
        "" if state != "ERROR" else f"databricks clusters start {cluster_id}",
    )


def check_warehouse(w: WorkspaceClient, warehouse_id: str | None) -> tuple[str, Finding]:
    """The SQL warehouse that `check_tables` and ``execute_sql`` use: given, else a running
    one, else any."""
    fix = (
        "create a SQL warehouse (SQL > SQL Warehouses > Create; serverless starts in "
        "seconds), or pass --warehouse-id ID"
    )
    try:
        found = [w.warehouses.get(warehouse_id)] if warehouse_id else list(w.warehouses.list())
    except Exception as exc:
        return "", Finding("SQL warehouse", False, _message(exc), fix)
    if not found:
        return "", Finding("SQL warehouse", False, "the workspace has no SQL warehouse", fix)
    running = [wh for wh in found if wh.state and wh.state.value == "RUNNING"]
    chosen = (running or found)[0]
    state = chosen.state.value if chosen.state else "UNKNOWN"
    detail = f"{chosen.name or chosen.id} ({chosen.id}): {state}"
    if state != "RUNNING":
        detail += "; a statement starts it"
    return chosen.id or "", Finding("SQL warehouse", True, detail)


def check_secret_scope(w: WorkspaceClient, scope: str) -> list[Finding]:
    try:
        scopes = {s.name for s in w.secrets.list_scopes()}
    except Exception as exc:
        return [Finding(f"secret scope {scope}", False, _message(exc), "check the token's rights")]
    if scope not in scopes:
        return [
            Finding(
                f"secret scope {scope}",
                False,
                "missing",
                f"rlm databricks deploy creates it, or: databricks secrets create-scope {scope}",
            )
        ]
    keys = {s.key for s in w.secrets.list_secrets(scope)}
    missing = [SECRET_KEYS[k] for k in JOB_KEYS if SECRET_KEYS[k] not in keys]
    listed = ", ".join(sorted(k for k in keys if k)) or "no keys"
    findings = [Finding(f"secret scope {scope}", True, listed)]
    if missing:
        findings.append(
            Finding(
                "job ids in the secret scope",
                False,
                "missing: " + ", ".join(missing),
                "rlm databricks deploy --skip-deploy (stores them)",
            )
        )
    return findings


def check_volume(w: WorkspaceClient, target: Target) -> Finding:
    path = f"/Volumes/{target.catalog}/{target.schema}/{VOLUME}"
    try:
        next(iter(w.files.list_directory_contents(path)), None)
    except Exception as exc:
        return Finding(
            f"volume {path}",
            False,
            _message(exc),
            f"run in a SQL editor: CREATE VOLUME IF NOT EXISTS "
            f"{target.catalog}.{target.schema}.{VOLUME}",
        )
    return Finding(f"volume {path}", True, "readable")


def check_tables(w: WorkspaceClient, warehouse_id: str, target: Target) -> list[Finding]:
    """Each lakehouse table, read through the warehouse (``SELECT ... LIMIT 0``)."""
    from rlm_engine.integrations.databricks.sql import SqlWarehouse
    from rlm_engine.integrations.delta_schemas import TABLES

    warehouse = SqlWarehouse(w, warehouse_id)
    schema = f"{target.catalog}.{target.schema}"
    missing: list[str] = []
    reasons: list[str] = []
    for name in TABLES:
        try:
            warehouse.execute(f"SELECT * FROM {schema}.{name} LIMIT 0")
        except Exception as exc:
            missing.append(name)
            reasons.append(_message(exc))
    if not missing:
        return [Finding(f"tables in {schema}", True, ", ".join(TABLES))]
    fix = (
        f"the jobs create them on their first run (rlm databricks deploy --skip-deploy "
        f"--run), which needs USE CATALOG, USE SCHEMA and CREATE TABLE on {schema}"
    )
    if len(missing) == len(TABLES):
        fix += f"; if the schema is missing: CREATE SCHEMA IF NOT EXISTS {schema}"
    first = reasons[0] if len(reasons[0]) <= 160 else reasons[0][:157] + "..."
    detail = f"missing or unreadable: {', '.join(missing)} ({first})"
    return [Finding(f"tables in {schema}", False, detail, fix)]


def check_serving(w: WorkspaceClient, model: str) -> Finding | None:
    """The root model's serving endpoint, when the model is ``databricks/<endpoint>``."""
    provider, _, endpoint = model.partition("/")
    if provider != "databricks" or not endpoint:
        return None
    try:
        found = w.serving_endpoints.get(endpoint)
    except Exception as exc:
        return Finding(
            f"serving endpoint {endpoint}",
            False,
            _message(exc),
            "create it (Serving > Create serving endpoint), or deploy with another "
            "--model (rlm databricks init --model databricks/<endpoint>)",
        )
    ready = found.state.ready.value if found.state and found.state.ready else "UNKNOWN"
    return Finding(
        f"serving endpoint {endpoint}",
        ready == "READY",
        ready,
        "" if ready == "READY" else "wait until it is READY, or see its events in Serving",
    )


def run_checks(args: argparse.Namespace) -> list[Finding]:
    w, findings = check_auth(args.profile)
    if w is None:
        return findings
    target, job_findings = check_jobs(w, args)
    findings += job_findings
    if args.cluster_id:
        findings.append(check_cluster(w, args.cluster_id))
    warehouse_id, warehouse = check_warehouse(w, args.warehouse_id)
    findings.append(warehouse)
    findings += check_secret_scope(w, target.secret_scope)
    findings.append(check_volume(w, target))
    if warehouse_id:
        findings += check_tables(w, warehouse_id, target)
    serving = check_serving(w, target.model)
    if serving is not None:
        findings.append(serving)
    return findings


def _print(findings: list[Finding], out: Callable[[str], None]) -> None:
    width = max(len(f.what) for f in findings)
    for f in findings:
        out(f"{'ok' if f.ok else 'MISSING':7}  {f.what:{width}}  {f.detail}")
        if not f.ok and f.fix:
            out(f"{'':7}  {'':{width}}  fix: {f.fix}")


def run_check(args: argparse.Namespace) -> int:
    """The handler of ``rlm databricks check``."""
    findings = run_checks(args)
    ok = all(f.ok for f in findings)
    if args.json:
        data: dict[str, Any] = {"ok": ok, "checks": [asdict(f) for f in findings]}
        print(json.dumps(data, ensure_ascii=False))
    else:
        _print(findings, print)
        missing = sum(1 for f in findings if not f.ok)
        print("nothing is missing" if ok else f"{missing} thing(s) missing: see the fixes above")
    return EXIT_OK if ok else EXIT_MISSING
