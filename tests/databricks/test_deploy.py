"""`rlm databricks deploy` against the loopback double, through the real databricks-sdk.

The double holds the three jobs as a deploy that did not wire them leaves them (created
from the bundle's own resources, their wired parameters stale); `deploy --skip-deploy
--run` must find them by name, store their ids in the secret scope, wire the executor's id
into the orchestrator's parameters and the orchestrator's into the ingestor's, and run the
orchestrator job, whose command is the bundle's task command line parsed by the real
orchestrator parser (`orchestrator_stub.py`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bundle_support import create_jobs, orchestrator_argv
from databricks.sdk import WorkspaceClient
from databricks_double import DatabricksDouble

from rlm_engine.deploy.bundle import (
    EXECUTOR,
    INGESTOR,
    JOB_KEYS,
    ORCHESTRATOR,
    SECRET_KEYS,
    BundleOptions,
    write_bundle,
)

OPTIONS = BundleOptions(catalog="cat", schema="sch", secret_scope="rlm-test-scope")


@pytest.fixture
def double(tmp_path: Path) -> Iterator[DatabricksDouble]:
    with DatabricksDouble(tmp_path / "workspace") as d:
        yield d


def _env(tmp_path: Path, double: DatabricksDouble, path: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "RLM_"))}
    env.update(
        DATABRICKS_HOST=double.url,
        DATABRICKS_TOKEN=double.token,
        RLM_HOME=str(tmp_path / "home"),
        HOME=str(tmp_path),  # no ~/.databrickscfg of the machine's user
    )
    if path is not None:
        env["PATH"] = path
    return env


def _rlm(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlm_engine.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def _client(double: DatabricksDouble) -> WorkspaceClient:
    return WorkspaceClient(host=double.url, token=double.token)


def _params(double: DatabricksDouble, job_id: int) -> dict[str, str]:
    job = next(j for j in double.jobs if j["job_id"] == job_id)
    return {p["name"]: p["default"] for p in job["settings"]["parameters"]}


def _deployed(tmp_path: Path, double: DatabricksDouble) -> dict[str, int]:
    ids = create_jobs(_client(double), OPTIONS, stale_ids="")
    double.attach_command(ids[ORCHESTRATOR], orchestrator_argv(double.files_root))
    write_bundle(tmp_path / "project", OPTIONS)
    return ids


def test_skip_deploy_run_wires_the_ids_and_runs_the_orchestrator(
    tmp_path: Path, double: DatabricksDouble
) -> None:
    ids = _deployed(tmp_path, double)
    assert _params(double, ids[ORCHESTRATOR])["RLM_EXECUTOR_JOB_ID"] == ""

    done = _rlm(
        ["databricks", "deploy", "--skip-deploy", "--run", "--json"],
        _env(tmp_path, double),
        tmp_path / "project",
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)

    assert report["jobs"] == {
        "rlm-orchestrator": ids[ORCHESTRATOR],
        "rlm-executor": ids[EXECUTOR],
        "rlm-ingestor": ids[INGESTOR],
    }
    assert report["deployed"] is False and report["wheel"] is None
    # the ids are in the secret scope the orchestrator job names, created for them
    assert report["secret_scope"] == "rlm-test-scope" and report["secret_scope_created"]
    assert double.secrets["rlm-test-scope"] == {SECRET_KEYS[k]: str(ids[k]) for k in JOB_KEYS}
    # executor id -> orchestrator's parameters; orchestrator id -> ingestor's
    assert _params(double, ids[ORCHESTRATOR])["RLM_EXECUTOR_JOB_ID"] == str(ids[EXECUTOR])
    assert _params(double, ids[INGESTOR])["RLM_ORCHESTRATOR_JOB_ID"] == str(ids[ORCHESTRATOR])
    assert _params(double, ids[ORCHESTRATOR])["RLM_CATALOG"] == "cat"  # the rest kept
    # one run of the orchestrator job, given the wired id through its command line
    (run,) = [r for r in double.runs.values() if r.job_id == ids[ORCHESTRATOR]]
    assert run.params["RLM_EXECUTOR_JOB_ID"] == str(ids[EXECUTOR])
    assert "--mode=databricks" in run.argv
    assert report["run"]["result_state"] == "SUCCESS"
    assert report["run"]["answer"] == f"executor job {ids[EXECUTOR]}, session session_001"
    assert report["run"]["rlm_run_id"] == "run-stub"
    assert not [r for r in double.runs.values() if r.job_id != ids[ORCHESTRATOR]]


def test_a_second_deploy_changes_nothing(tmp_path: Path, double: DatabricksDouble) -> None:
    ids = _deployed(tmp_path, double)
    env = _env(tmp_path, double)
    first = _rlm(["databricks", "deploy", "--skip-deploy"], env, tmp_path / "project")
    assert first.returncode == 0, first.stderr
    assert "wired: rlm-orchestrator RLM_EXECUTOR_JOB_ID" in first.stderr
    updates = len(double.requests_to("/api/2.2/jobs/update"))

    again = _rlm(["databricks", "deploy", "--skip-deploy", "--json"], env, tmp_path / "project")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["rewired"] == [] and report["secret_scope_created"] is False
    assert len(double.requests_to("/api/2.2/jobs/update")) == updates
    assert report["run"] is None and not double.runs
    assert double.secrets["rlm-test-scope"][SECRET_KEYS[EXECUTOR]] == str(ids[EXECUTOR])


def test_run_parameters_and_prompt_reach_the_job(tmp_path: Path, double: DatabricksDouble) -> None:
    ids = _deployed(tmp_path, double)
    args = [
        "databricks",
        "deploy",
        "--skip-deploy",
        "--run",
        "--prompt",
        "-3 plus 4?",
        "--param",
        "RLM_SESSION_ID=demo",
    ]
    done = _rlm(args, _env(tmp_path, double), tmp_path / "project")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"executor job {ids[EXECUTOR]}, session demo"
    assert "TERMINATED" in done.stderr and "run " in done.stderr
    (run,) = double.runs.values()
    assert run.params["RLM_PROMPT"] == "-3 plus 4?" and run.params["RLM_SESSION_ID"] == "demo"


def test_test_level_uploads_its_data_and_judges_the_answer(
    tmp_path: Path, double: DatabricksDouble
) -> None:
    _deployed(tmp_path, double)
    done = _rlm(
        ["databricks", "deploy", "--skip-deploy", "--test-level", "1", "--json"],
        _env(tmp_path, double),
        tmp_path / "project",
    )
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)["run"]
    assert run["level"] == 1 and run["passed"] is True, run
    uploaded = list(
        (double.files_root / "cat" / "sch" / "artifacts" / "test-levels").rglob("*.txt")
    )
    assert [p.name for p in uploaded] == ["numbers.txt"]
    (job_run,) = double.runs.values()
    assert "What is their sum?" in job_run.params["RLM_PROMPT"]
    assert job_run.params["RLM_SESSION_ID"] == "test-level-1"


def test_a_failed_run_is_exit_status_1_with_its_error(
    tmp_path: Path, double: DatabricksDouble
) -> None:
    ids = _deployed(tmp_path, double)
    double.attach_command(
        ids[ORCHESTRATOR], lambda _: [sys.executable, "-c", "import sys; sys.exit('boom')"]
    )
    done = _rlm(
        ["databricks", "deploy", "--skip-deploy", "--run"],
        _env(tmp_path, double),
        tmp_path / "project",
    )
    assert done.returncode == 1
    assert "FAILED" in done.stderr and "the run failed" in done.stderr


def test_jobs_missing_from_the_workspace_say_to_deploy(
    tmp_path: Path, double: DatabricksDouble
) -> None:
    write_bundle(tmp_path / "project", OPTIONS)
    done = _rlm(
        ["databricks", "deploy", "--skip-deploy"], _env(tmp_path, double), tmp_path / "project"
    )
    assert done.returncode == 2
    assert "no job named 'rlm-orchestrator'" in done.stderr
    assert "hint: deploy the bundle first" in done.stderr


def test_deploy_without_the_cli_says_how_to_install_it(
    tmp_path: Path, double: DatabricksDouble
) -> None:
    write_bundle(tmp_path / "project", OPTIONS)
    bare = tmp_path / "bin"
    bare.mkdir()
    done = _rlm(
        ["databricks", "deploy"], _env(tmp_path, double, path=str(bare)), tmp_path / "project"
    )
    assert done.returncode == 2
    assert "the `databricks` command is not installed" in done.stderr
    assert "brew install databricks" in done.stderr and "--skip-deploy" in done.stderr
    assert not double.requests  # nothing was asked of the workspace


def test_deploy_outside_a_bundle_says_to_init(tmp_path: Path, double: DatabricksDouble) -> None:
    done = _rlm(["databricks", "deploy"], _env(tmp_path, double), tmp_path)
    assert done.returncode == 2
    assert "holds no databricks.yml" in done.stderr and "rlm databricks init" in done.stderr


def _fake_cli(bin_dir: Path, log: Path, summary: dict[str, Any], version: str) -> None:
    """A stand-in for the Databricks CLI (not installable here): it logs each call and
    answers `--version` and `bundle summary` as the real one does."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "databricks"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps([os.getcwd(), sys.argv[1:]]) + '\\n')\n"
        f"if sys.argv[1:] == ['--version']: print({version!r})\n"
        f"elif sys.argv[1:3] == ['bundle', 'summary']: print(json.dumps({summary!r}))\n"
    )
    script.chmod(0o755)


def test_deploy_builds_deploys_with_the_cli_and_takes_its_ids(
    tmp_path: Path, double: DatabricksDouble
) -> None:
    ids = _deployed(tmp_path, double)
    project = tmp_path / "project"
    (project / "dist").mkdir()
    (project / "dist" / "rlm_engine-0.0.1-py3-none-any.whl").write_bytes(b"old")
    wheel = tmp_path / "rlm_engine-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"a wheel")
    log = tmp_path / "cli.log"
    summary = {"resources": {"jobs": {k: {"id": str(v)} for k, v in ids.items()}}}
    _fake_cli(tmp_path / "bin", log, summary, "Databricks CLI v0.240.0")
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    args = ["databricks", "deploy", "--wheel", str(wheel), "--target", "prod", "--json"]
    done = _rlm(args, _env(tmp_path, double, path=path), project)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["deployed"] is True
    assert [p.name for p in (project / "dist").iterdir()] == [wheel.name]  # the old one gone
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c[1][:2] for c in calls] == [
        ["--version"],
        ["bundle", "validate"],
        ["bundle", "deploy"],
        ["bundle", "summary"],
    ]
    assert all(c[0] == str(project) for c in calls[1:])
    assert all(c[1][2:4] == ["--target", "prod"] for c in calls[1:])
    # the summary's ids were used: no job was looked up by name
    assert not double.requests_to("/api/2.2/jobs/list")
    assert _params(double, ids[ORCHESTRATOR])["RLM_EXECUTOR_JOB_ID"] == str(ids[EXECUTOR])


def test_the_legacy_cli_is_refused_with_the_install_hint(
    tmp_path: Path, double: DatabricksDouble
) -> None:
    write_bundle(tmp_path / "project", OPTIONS)
    _fake_cli(tmp_path / "bin", tmp_path / "cli.log", {}, "Version 0.18.0")
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    done = _rlm(["databricks", "deploy"], _env(tmp_path, double, path=path), tmp_path / "project")
    assert done.returncode == 2
    assert "not a Databricks CLI that can deploy bundles (Version 0.18.0)" in done.stderr
    assert "0.218 or later" in done.stderr
