"""`rlm databricks check` against the loopback double: every gap named with its fix, and a
workspace with everything in place passes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bundle_support import create_jobs
from databricks.sdk import WorkspaceClient
from databricks_double import DatabricksDouble

from rlm_engine.deploy.bundle import JOB_KEYS, SECRET_KEYS, BundleOptions
from rlm_engine.integrations.delta_schemas import TABLES

OPTIONS = BundleOptions(catalog="cat", schema="sch", model="databricks/rlm-root")


@pytest.fixture
def double(tmp_path: Path) -> Iterator[DatabricksDouble]:
    with DatabricksDouble(tmp_path / "workspace") as d:
        yield d


def _check(
    tmp_path: Path, env_over: dict[str, str], *args: str
) -> tuple[int, dict[str, Any], subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "RLM_"))}
    env.update(RLM_HOME=str(tmp_path / "home"), HOME=str(tmp_path), **env_over)
    done = subprocess.run(
        [sys.executable, "-m", "rlm_engine.cli.main", "databricks", "check", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    data = json.loads(done.stdout) if "--json" in args else {}
    return done.returncode, data, done


def _env(double: DatabricksDouble) -> dict[str, str]:
    return {"DATABRICKS_HOST": double.url, "DATABRICKS_TOKEN": double.token}


def _by_what(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["what"]: c for c in data["checks"]}


def test_an_empty_workspace_lists_every_gap_with_its_fix(
    tmp_path: Path, double: DatabricksDouble
) -> None:
    code, data, _ = _check(tmp_path, _env(double), "--json", "--catalog", "cat", "--schema", "sch")
    assert code == 1 and data["ok"] is False
    checks = _by_what(data)
    assert checks["host"]["ok"] and checks["host"]["detail"].startswith("http://127.0.0.1")
    assert checks["auth"]["ok"] and checks["auth"]["detail"]
    for name in ("rlm-orchestrator", "rlm-executor", "rlm-ingestor"):
        job = checks[f"job {name}"]
        assert not job["ok"] and "rlm databricks deploy" in job["fix"]
    assert checks["SQL warehouse"]["ok"]  # the double has one running warehouse
    scope = checks["secret scope rlm-secrets"]
    assert not scope["ok"] and "create-scope rlm-secrets" in scope["fix"]
    volume = checks["volume /Volumes/cat/sch/artifacts"]
    assert not volume["ok"] and "CREATE VOLUME IF NOT EXISTS cat.sch.artifacts" in volume["fix"]
    tables = checks["tables in cat.sch"]
    assert not tables["ok"] and "CREATE SCHEMA IF NOT EXISTS cat.sch" in tables["fix"]
    assert all(name in tables["detail"] for name in TABLES)
    assert all(c["fix"] for c in data["checks"] if not c["ok"])


def _ready_workspace(double: DatabricksDouble) -> None:
    w = WorkspaceClient(host=double.url, token=double.token)
    ids = create_jobs(w, OPTIONS)  # then wired by hand, as a deploy leaves them
    w.secrets.create_scope(OPTIONS.secret_scope)
    for key in JOB_KEYS:
        w.secrets.put_secret(OPTIONS.secret_scope, SECRET_KEYS[key], string_value=str(ids[key]))
    from databricks.sdk.service.jobs import JobParameterDefinition, JobSettings

    for job_key, parameter, target in (
        ("rlm_orchestrator", "RLM_EXECUTOR_JOB_ID", "rlm_executor"),
        ("rlm_ingestor", "RLM_ORCHESTRATOR_JOB_ID", "rlm_orchestrator"),
    ):
        settings = w.jobs.get(ids[job_key]).settings
        assert settings is not None and settings.parameters is not None
        params = [
            JobParameterDefinition(name=p.name, default=str(ids[target]))
            if p.name == parameter
            else p
            for p in settings.parameters
        ]
        w.jobs.update(ids[job_key], new_settings=JobSettings(parameters=params))
    w.files.upload("/Volumes/cat/sch/artifacts/task.txt", io.BytesIO(b"hello"), overwrite=True)
    warehouse = next(iter(w.warehouses.list()))
    for name in TABLES:
        w.statement_execution.execute_statement(
            f"CREATE TABLE IF NOT EXISTS cat.sch.{name} (id STRING) USING DELTA",
            warehouse_id=warehouse.id or "",
            wait_timeout="30s",
        )
    double.add_serving_endpoint("rlm-root")


def test_a_ready_workspace_passes(tmp_path: Path, double: DatabricksDouble) -> None:
    _ready_workspace(double)
    code, _, done = _check(tmp_path, _env(double))
    assert code == 0, done.stdout
    assert done.stdout.strip().endswith("nothing is missing")
    for line in (
        "job rlm-orchestrator",
        "wiring rlm-ingestor RLM_ORCHESTRATOR_JOB_ID",
        "tables in cat.sch",
        "serving endpoint rlm-root",
        "secret scope rlm-secrets",
    ):
        assert any(row.startswith("ok") and line in row for row in done.stdout.splitlines()), line


def test_unwired_jobs_and_missing_ids_are_named(tmp_path: Path, double: DatabricksDouble) -> None:
    w = WorkspaceClient(host=double.url, token=double.token)
    create_jobs(w, OPTIONS, stale_ids="999")
    w.secrets.create_scope(OPTIONS.secret_scope)
    code, data, _ = _check(tmp_path, _env(double), "--json")
    assert code == 1
    checks = _by_what(data)
    wiring = checks["wiring rlm-orchestrator RLM_EXECUTOR_JOB_ID"]
    assert not wiring["ok"] and "999" in wiring["detail"]
    assert wiring["fix"] == "rlm databricks deploy --skip-deploy (wires the ids)"
    ids = checks["job ids in the secret scope"]
    assert not ids["ok"] and "executor-job-id" in ids["detail"]
    # the catalog and schema come from the deployed orchestrator job's parameters
    assert "tables in cat.sch" in checks
    endpoint = checks["serving endpoint rlm-root"]
    assert not endpoint["ok"] and "Serving" in endpoint["fix"]


def test_a_wrong_token_stops_at_auth(tmp_path: Path, double: DatabricksDouble) -> None:
    env = dict(_env(double), DATABRICKS_TOKEN="dapi-wrong")
    code, data, _ = _check(tmp_path, env, "--json")
    assert code == 1
    assert [c["what"] for c in data["checks"]] == ["host", "auth"]
    auth = data["checks"][1]
    assert not auth["ok"] and "DATABRICKS_TOKEN" in auth["fix"]


def test_no_host_at_all_says_what_to_set(tmp_path: Path) -> None:
    code, _, done = _check(tmp_path, {})
    assert code == 1
    assert done.stdout.startswith("MISSING  host")
    assert "DATABRICKS_HOST" in done.stdout
