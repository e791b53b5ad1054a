"""`rlm databricks init`: the bundle's structure, job by job, task by task, parameter by
parameter, checked against the project's entry points, the SDK's own job types and the
parsers of the three console scripts.

No bundle JSON schema ships with the installed databricks-sdk (it has none; the schema is
printed by the Go CLI's `databricks bundle schema`, which is not installed here), so the
job resources are instead round-tripped through the SDK's `JobSettings`, which drops any
field the Jobs API does not know.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from bundle_support import references, resolve, resolved_job
from databricks.sdk.service.jobs import JobSettings

from rlm_engine.cli.main import main
from rlm_engine.deploy.bundle import (
    EXECUTOR,
    INGESTOR,
    JOB_KEYS,
    JOB_NAMES,
    ORCHESTRATOR,
    PACKAGE_NAME,
    PARAMETERS,
    WIRING,
    BundleOptions,
    bundle_files,
    job_parameters,
    task_argv,
    write_bundle,
)
from rlm_engine.deploy.yaml_text import dump
from rlm_engine.jobs.args import orchestrator_parser
from rlm_engine.jobs.executor import executor_parser
from rlm_engine.jobs.ingestor import ingestor_parser

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = {
    "serverless": BundleOptions(),
    "cluster": BundleOptions(compute="cluster", cluster_id="0101-abc"),
    "job-cluster": BundleOptions(compute="job-cluster", node_type_id="i3.xlarge", host="https://x"),
}
# What the orchestrator sends with each executor `run_now` (the jobs' Databricks mode).
EXECUTOR_RUN_PARAMETERS = {"artifact_id", "catalog", "schema", "session_id"}
JOB_REF = re.compile(r"\{\{job\.parameters\.([^}]+)\}\}")


def _written(tmp_path: Path, options: BundleOptions) -> dict[str, Any]:
    write_bundle(tmp_path, options)
    return {
        str(p.relative_to(tmp_path)): yaml.safe_load(p.read_text(encoding="utf-8"))
        for p in sorted(tmp_path.rglob("*.yml"))
    }


def _jobs(docs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = {}
    for path, doc in docs.items():
        if path.startswith("resources/"):
            jobs.update(doc["resources"]["jobs"])
    return jobs


@pytest.mark.parametrize("compute", sorted(OPTIONS))
def test_files_read_back_as_the_data_written(tmp_path: Path, compute: str) -> None:
    options = OPTIONS[compute]
    docs = _written(tmp_path, options)
    assert docs == bundle_files(options)
    assert set(docs) == {"databricks.yml", *(f"resources/{k}.job.yml" for k in JOB_KEYS)}
    assert docs["databricks.yml"]["include"] == ["resources/*.yml"]
    assert docs["databricks.yml"]["targets"]["dev"]["default"] is True


@pytest.mark.parametrize("compute", sorted(OPTIONS))
def test_every_job_task_and_parameter(tmp_path: Path, compute: str) -> None:
    options = OPTIONS[compute]
    docs = _written(tmp_path, options)
    jobs = _jobs(docs)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    assert project.replace("-", "_") == PACKAGE_NAME
    assert set(jobs) == set(JOB_KEYS)
    for key, job in jobs.items():
        assert job["name"] == JOB_NAMES[key]
        names = [p["name"] for p in job["parameters"]]
        assert names == [name for name, _ in PARAMETERS[key]]
        assert all(isinstance(p["default"], str) for p in job["parameters"])
        (task,) = job["tasks"]
        wheel = task["python_wheel_task"]
        assert wheel["package_name"] == PACKAGE_NAME
        assert wheel["entry_point"] in scripts
        assert scripts[wheel["entry_point"]].startswith(f"rlm_engine.jobs.{key[4:]}")
        assert wheel["parameters"][0] == "--mode=databricks"
        used = {m for arg in wheel["parameters"] for m in JOB_REF.findall(arg)}
        assert used <= set(names), f"{key} refers to undefined job parameters"
        _assert_compute(compute, job, task)
    assert {p["name"] for p in jobs[EXECUTOR]["parameters"]} == EXECUTOR_RUN_PARAMETERS
    assert jobs[INGESTOR]["schedule"]["pause_status"] == "PAUSED"


def _assert_compute(compute: str, job: dict[str, Any], task: dict[str, Any]) -> None:
    if compute == "serverless":
        (env,) = job["environments"]
        assert task["environment_key"] == env["environment_key"]
        assert env["spec"]["dependencies"][0] == "../dist/*.whl"
        assert "libraries" not in task
    elif compute == "cluster":
        assert task["existing_cluster_id"] == "${var.cluster_id}"
        assert {"whl": "../dist/*.whl"} in task["libraries"]
    else:
        (cluster,) = job["job_clusters"]
        assert task["job_cluster_key"] == cluster["job_cluster_key"]
        assert cluster["new_cluster"]["num_workers"] == 0
        assert {"whl": "../dist/*.whl"} in task["libraries"]


@pytest.mark.parametrize("compute", sorted(OPTIONS))
def test_every_bundle_reference_resolves(tmp_path: Path, compute: str) -> None:
    options = OPTIONS[compute]
    docs = _written(tmp_path, options)
    refs = references(options, dict.fromkeys(JOB_KEYS, "1"))
    refs.update({"bundle.target": "dev", "workspace.current_user.userName": "me@example.com"})
    for doc in docs.values():
        resolve(doc, refs)  # a KeyError names an undeclared variable or unknown job


def test_ids_are_wired_by_bundle_reference() -> None:
    for job_key, parameter, target_key in WIRING:
        assert job_parameters(job_key)[parameter] == "${resources.jobs." + target_key + ".id}"


@pytest.mark.parametrize("compute", sorted(OPTIONS))
def test_jobs_round_trip_through_the_sdk_types(compute: str) -> None:
    """`JobSettings.from_dict` keeps only fields the Jobs API defines: a misspelt or
    misplaced field would be missing after the round trip."""
    ids = {ORCHESTRATOR: 11, EXECUTOR: 12, INGESTOR: 13}
    for key in JOB_KEYS:
        settings = resolved_job(key, OPTIONS[compute], ids)
        assert JobSettings.from_dict(settings).as_dict() == settings


def test_task_command_lines_parse_with_the_entry_points_own_parsers() -> None:
    ids = {ORCHESTRATOR: "11", EXECUTOR: "12", INGESTOR: "13"}
    options = OPTIONS["serverless"]
    refs = references(options, ids)
    defaults = {key: resolve(job_parameters(key), refs) for key in JOB_KEYS}

    orchestrator = orchestrator_parser().parse_args(task_argv(ORCHESTRATOR, defaults[ORCHESTRATOR]))
    assert orchestrator.mode == "databricks"
    assert orchestrator.executor_job_id == "12"
    assert orchestrator.catalog == options.catalog and orchestrator.schema == options.schema
    assert orchestrator.model == options.model
    assert orchestrator.prompt_file == "/Volumes/main/rlm/artifacts/task.txt"

    run = dict(defaults[EXECUTOR], artifact_id="a1", session_id="s1")
    executor = executor_parser().parse_args(task_argv(EXECUTOR, run))
    assert (executor.artifact_id, executor.mode) == ("a1", "databricks")

    ingestor, extra = ingestor_parser().parse_known_args(task_argv(INGESTOR, defaults[INGESTOR]))
    assert extra == []
    assert ingestor.orchestrator_job_id == "11" and ingestor.once
    assert ingestor.source == "delta:main.rlm.tasks"


def test_a_prompt_starting_with_a_dash_stays_a_prompt() -> None:
    refs = references(OPTIONS["serverless"], dict.fromkeys(JOB_KEYS, "7"))
    params = resolve(job_parameters(ORCHESTRATOR), refs)
    params["RLM_PROMPT"] = "--help me count"
    args = orchestrator_parser().parse_args(task_argv(ORCHESTRATOR, params))
    assert args.prompt == "--help me count"


def test_yaml_writer_quotes_what_yaml_would_misread() -> None:
    data = {"a": ["on", "0123", "x: y", "#no", "", 'é\n"q"'], "b": {}, "c": [], "d": 3}
    assert yaml.safe_load(dump(data, header="two\nlines")) == data


def test_init_writes_the_bundle_and_keeps_existing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "project"
    assert main(["databricks", "init", "--dir", str(target), "--catalog", "dev_cat"]) == 0
    out = capsys.readouterr().out
    assert "databricks.yml" in out and "rlm databricks deploy" in out
    doc = yaml.safe_load((target / "databricks.yml").read_text())
    assert doc["variables"]["catalog"]["default"] == "dev_cat"
    assert (target / ".gitignore").read_text().splitlines() == [".databricks/", "dist/"]

    assert main(["databricks", "init", "--dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert "exist already" in err and "--force" in err
    assert main(["databricks", "init", "--dir", str(target), "--force"]) == 0


@pytest.mark.parametrize(
    ("argv", "message", "hint"),
    [
        (["--compute", "cluster"], "needs the cluster's id", "--cluster-id"),
        (["--compute", "job-cluster"], "needs a node type", "--node-type"),
        (["--catalog", "my-cat"], "not a plain Unity Catalog name", "underscores"),
    ],
)
def test_init_refuses_options_that_cannot_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str, hint: str
) -> None:
    assert main(["databricks", "init", "--dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "hint: " in err and hint in err
    assert not (tmp_path / "databricks.yml").exists()


def test_the_ingestor_trigger_sends_parameters_the_orchestrator_job_defines() -> None:
    from rlm_engine.jobs.triggers import DatabricksTrigger, RunRequest

    trigger = DatabricksTrigger(cast(Any, None), 1, model="databricks/m")  # no request made
    request = RunRequest("p", "s", "k", context="/Volumes/c/s/v/data.txt")
    sent = set(trigger.parameters(request))
    assert sent <= set(job_parameters(ORCHESTRATOR))
