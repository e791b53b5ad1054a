"""The Databricks Asset Bundle of the three lakehouse jobs, as Python data.

`bundle_files` returns ``databricks.yml`` and one resource file per job; `write_bundle` puts
them in a project. Each job is one Python wheel task on an entry point of the
``rlm-engine`` wheel (``rlm-orchestrator``, ``rlm-executor``, ``rlm-ingestor``), with job
parameters named as the jobs' own ``RLM_*`` variables (the executor's are the four the
orchestrator sends with each ``run_now``). Job parameters reach a wheel task only through
its command line, so each task's ``parameters`` hold ``--flag={{job.parameters.NAME}}``
references: every parameter has a non-empty default where its flag refuses an empty
value. The executor's job id is wired into the orchestrator's parameters, and the
orchestrator's into the ingestor's, by bundle references (``${resources.jobs.KEY.id}``);
`rlm databricks deploy` sets them again through the Jobs API, for jobs that were deployed
some other way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from rlm_engine.deploy.yaml_text import dump
from rlm_engine.errors import ConfigurationError

Compute = Literal["serverless", "cluster", "job-cluster"]
COMPUTES: tuple[str, ...] = get_args(Compute)

PACKAGE_NAME = "rlm_engine"
"""The wheel task's ``package_name``: the distribution ``rlm-engine`` as its wheel spells it
(``rlm_engine-VERSION-py3-none-any.whl``); entry points are looked up in its metadata."""
WHEEL_GLOB = "../dist/*.whl"
"""The wheel, relative to the resource files (``resources/``): `deploy` builds it there."""
EXTRA_DEPENDENCIES: tuple[str, ...] = ("databricks-sdk>=0.30",)
"""The ``databricks`` extra, installed next to the wheel (the wheel's own dependencies come
with it; its extras do not)."""
ENVIRONMENT_VERSION = "3"
"""Serverless environment version (Python 3.12)."""
DEFAULT_SPARK_VERSION = "16.4.x-scala2.12"
DEFAULT_MODEL = "databricks/databricks-claude-sonnet-4"
DEFAULT_SECRET_SCOPE = "rlm-secrets"
DEFAULT_CATALOG = "main"
DEFAULT_SCHEMA = "rlm"
DEFAULT_MAX_ITERATIONS = "30"
INGEST_SCHEDULE = "0 0/5 * * * ?"
"""Every five minutes; written paused, so nothing runs until the schedule is unpaused."""

# The bundle's resource keys and the jobs' names (the names `deploy` resolves ids by).
ORCHESTRATOR = "rlm_orchestrator"
EXECUTOR = "rlm_executor"
INGESTOR = "rlm_ingestor"
JOB_KEYS: tuple[str, ...] = (ORCHESTRATOR, EXECUTOR, INGESTOR)
JOB_NAMES: Mapping[str, str] = {
    ORCHESTRATOR: "rlm-orchestrator",
    EXECUTOR: "rlm-executor",
    INGESTOR: "rlm-ingestor",
}
ENTRY_POINTS: Mapping[str, str] = {
    ORCHESTRATOR: "rlm-orchestrator",
    EXECUTOR: "rlm-executor",
    INGESTOR: "rlm-ingestor",
}
# The secret-scope keys that hold the jobs' ids (the seed's deploy stores them there too).
SECRET_KEYS: Mapping[str, str] = {
    ORCHESTRATOR: "orchestrator-job-id",
    EXECUTOR: "executor-job-id",
    INGESTOR: "ingestor-job-id",
}
# Which job parameter of which job holds which other job's id.
WIRING: tuple[tuple[str, str, str], ...] = (
    (ORCHESTRATOR, "RLM_EXECUTOR_JOB_ID", EXECUTOR),
    (INGESTOR, "RLM_ORCHESTRATOR_JOB_ID", ORCHESTRATOR),
)


def _job_id(key: str) -> str:
    """The bundle reference to a job's id, resolved when the bundle is deployed."""
    return "${resources.jobs." + key + ".id}"


# job key -> ((job parameter, default), ...): the seed's orchestrator parameters under our
# names; the executor's are exactly those `run_now` sends for an artifact.
PARAMETERS: Mapping[str, tuple[tuple[str, str], ...]] = {
    ORCHESTRATOR: (
        ("RLM_PROMPT", ""),
        ("RLM_PROMPT_FILE", "/Volumes/${var.catalog}/${var.schema}/artifacts/task.txt"),
        ("RLM_SESSION_ID", "session_001"),
        ("RLM_USER_ID", "job_user"),
        ("RLM_MAX_ITERATIONS", DEFAULT_MAX_ITERATIONS),
        ("RLM_MODEL", "${var.model}"),
        ("RLM_CATALOG", "${var.catalog}"),
        ("RLM_SCHEMA", "${var.schema}"),
        ("RLM_EXECUTOR_JOB_ID", _job_id(EXECUTOR)),
        ("RLM_SECRET_SCOPE", "${var.secret_scope}"),
        ("RLM_DEDUPE_KEY", ""),
        ("RLM_CONTEXT", ""),
    ),
    EXECUTOR: (
        ("artifact_id", ""),
        ("session_id", ""),
        ("catalog", "${var.catalog}"),
        ("schema", "${var.schema}"),
    ),
    INGESTOR: (
        ("RLM_SOURCE", "${var.ingest_source}"),
        ("RLM_CATALOG", "${var.catalog}"),
        ("RLM_SCHEMA", "${var.schema}"),
        ("RLM_ORCHESTRATOR_JOB_ID", _job_id(ORCHESTRATOR)),
        ("RLM_SECRET_SCOPE", "${var.secret_scope}"),
        ("RLM_MAX_PARALLEL", "2"),
    ),
}

# A run's values by what they are -> the orchestrator job's parameter that carries them
# (for whatever starts that job with `run_now`, e.g. the ingestor's trigger).
ORCHESTRATOR_RUN_PARAMETERS: Mapping[str, str] = {
    "prompt": "RLM_PROMPT",
    "prompt_file": "RLM_PROMPT_FILE",
    "session_id": "RLM_SESSION_ID",
    "user_id": "RLM_USER_ID",
    "dedupe_key": "RLM_DEDUPE_KEY",
    "model": "RLM_MODEL",
    "max_iterations": "RLM_MAX_ITERATIONS",
    "context": "RLM_CONTEXT",
}

# job key -> the wheel task's command line: fixed flags and `{{job.parameters.X}}` references.
_ORCHESTRATOR_FLAGS = (
    ("--catalog", "RLM_CATALOG"),
    ("--schema", "RLM_SCHEMA"),
    ("--prompt", "RLM_PROMPT"),
    ("--prompt-file", "RLM_PROMPT_FILE"),
    ("--session-id", "RLM_SESSION_ID"),
    ("--user-id", "RLM_USER_ID"),
    ("--max-iterations", "RLM_MAX_ITERATIONS"),
    ("--model", "RLM_MODEL"),
    ("--executor-job-id", "RLM_EXECUTOR_JOB_ID"),
    ("--secret-scope", "RLM_SECRET_SCOPE"),
    ("--dedupe-key", "RLM_DEDUPE_KEY"),
    ("--context", "RLM_CONTEXT"),
)
_EXECUTOR_FLAGS = (
    ("--artifact-id", "artifact_id"),
    ("--catalog", "catalog"),
    ("--schema", "schema"),
)
_INGESTOR_FLAGS = (
    ("--source", "RLM_SOURCE"),
    ("--catalog", "RLM_CATALOG"),
    ("--schema", "RLM_SCHEMA"),
    ("--orchestrator-job-id", "RLM_ORCHESTRATOR_JOB_ID"),
    ("--secret-scope", "RLM_SECRET_SCOPE"),
    ("--max-parallel", "RLM_MAX_PARALLEL"),
)


def _argv(flags: tuple[tuple[str, str], ...], *fixed: str) -> list[str]:
    """``--flag=value`` keeps a value that starts with a dash (a prompt) a value."""
    refs = [f"{flag}={{{{job.parameters.{name}}}}}" for flag, name in flags]
    return ["--mode=databricks", *refs, *fixed]


TASK_ARGV: Mapping[str, list[str]] = {
    ORCHESTRATOR: _argv(_ORCHESTRATOR_FLAGS, "--json"),
    EXECUTOR: _argv(_EXECUTOR_FLAGS),
    INGESTOR: _argv(_INGESTOR_FLAGS, "--once", "--json"),
}

_DESCRIPTIONS: Mapping[str, str] = {
    ORCHESTRATOR: "Runs the RLM loop over one prompt; each cell becomes an artifact run by "
    "rlm-executor. State in the Unity Catalog tables of RLM_CATALOG.RLM_SCHEMA.",
    EXECUTOR: "Runs one cell artifact (its code from the artifacts Volume) in a sandbox and "
    "writes result.json back; started by rlm-orchestrator with run_now.",
    INGESTOR: "Polls a task source and triggers one rlm-orchestrator run per new task, "
    "exactly once. Its schedule is written paused: unpause it to start polling.",
}
_REFERENCE = re.compile(r"\{\{\s*job\.parameters\.([A-Za-z0-9_.-]+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class BundleOptions:
    """What `rlm databricks init` asks: where the tables live, the model, and the compute."""

    catalog: str = DEFAULT_CATALOG
    schema: str = DEFAULT_SCHEMA
    model: str = DEFAULT_MODEL
    secret_scope: str = DEFAULT_SECRET_SCOPE
    compute: Compute = "serverless"
    cluster_id: str = ""
    """An existing cluster (``compute="cluster"``)."""
    node_type_id: str = ""
    """The job cluster's node type (``compute="job-cluster"``; cloud-specific)."""
    spark_version: str = DEFAULT_SPARK_VERSION
    host: str = ""
    """The workspace URL for the dev target; empty: the CLI's profile or DATABRICKS_HOST."""
    bundle_name: str = "rlm-engine"
    ingest_source: str = ""
    """The ingestor's ``--source``; empty: ``delta:CATALOG.SCHEMA.tasks``."""

    def validated(self) -> BundleOptions:
        """These options, or a `ConfigurationError` naming the one that cannot work."""
        for name, value in (("--catalog", self.catalog), ("--schema", self.schema)):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
                raise ConfigurationError(
                    f"{name} {value!r} is not a plain Unity Catalog name",
                    hint="use letters, digits and underscores (it names tables and a Volume)",
                )
        if self.compute not in COMPUTES:
            raise ConfigurationError(
                f"--compute {self.compute!r} is not one of {', '.join(COMPUTES)}",
                hint="serverless needs nothing else; cluster needs --cluster-id; "
                "job-cluster needs --node-type",
            )
        if self.compute == "cluster" and not self.cluster_id:
            raise ConfigurationError(
                "--compute cluster needs the cluster's id",
                hint="pass --cluster-id ID (see `databricks clusters list`), or use "
                "--compute serverless",
            )
        if self.compute == "job-cluster" and not self.node_type_id:
            raise ConfigurationError(
                "--compute job-cluster needs a node type",
                hint="pass --node-type, e.g. i3.xlarge (AWS), Standard_DS3_v2 (Azure), "
                "n2-highmem-4 (GCP)",
            )
        if not self.model.strip():
            raise ConfigurationError("--model is empty", hint="e.g. databricks/<endpoint>")
        return self

    @property
    def source(self) -> str:
        return self.ingest_source or f"delta:{self.catalog}.{self.schema}.tasks"


def job_parameters(key: str) -> dict[str, str]:
    """The job's parameters and their defaults as written (with bundle references)."""
    return dict(PARAMETERS[key])


def task_argv(key: str, parameters: Mapping[str, str]) -> list[str]:
    """The command line a job cluster gives the entry point of job ``key`` for a run with
    ``parameters``: each ``{{job.parameters.NAME}}`` replaced by its value, as the Jobs
    service resolves dynamic value references."""
    return resolve_references(TASK_ARGV[key], parameters)


def resolve_references(argv: list[str], parameters: Mapping[str, str]) -> list[str]:
    """``argv`` with each ``{{job.parameters.NAME}}`` replaced; an unknown name is an error,
    as it is when a workspace validates the job."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in parameters:
            raise ConfigurationError(
                f"the task refers to job parameter {name!r}, which the job does not define",
                hint="add it to the job's parameters (rlm databricks init writes them all)",
            )
        return parameters[name]

    return [_REFERENCE.sub(value, arg) for arg in argv]


def _compute(key: str, options: BundleOptions) -> tuple[dict[str, object], dict[str, object]]:
    """(the task's compute fields, the job's) for the chosen compute."""
    wheel_libraries: list[object] = [{"whl": WHEEL_GLOB}]
    wheel_libraries += [{"pypi": {"package": dep}} for dep in EXTRA_DEPENDENCIES]
    if options.compute == "serverless":
        spec = {
            "environment_version": ENVIRONMENT_VERSION,
            "dependencies": [WHEEL_GLOB, *EXTRA_DEPENDENCIES],
        }
        return {"environment_key": "rlm"}, {
            "environments": [{"environment_key": "rlm", "spec": spec}]
        }
    if options.compute == "cluster":
        return {"existing_cluster_id": "${var.cluster_id}", "libraries": wheel_libraries}, {}
    cluster = {
        "spark_version": "${var.spark_version}",
        "node_type_id": "${var.node_type_id}",
        "num_workers": 0,
        "data_security_mode": "SINGLE_USER",
        "spark_conf": {
            "spark.databricks.cluster.profile": "singleNode",
            "spark.master": "local[*, 4]",
        },
        "custom_tags": {"ResourceClass": "SingleNode", "rlm_job": key},
    }
    return {"job_cluster_key": "rlm", "libraries": wheel_libraries}, {
        "job_clusters": [{"job_cluster_key": "rlm", "new_cluster": cluster}]
    }


def job_resource(key: str, options: BundleOptions) -> dict[str, object]:
    """One job as the bundle declares it (the Jobs API's settings plus bundle references)."""
    task_compute, job_compute = _compute(key, options)
    task: dict[str, object] = {
        "task_key": key.removeprefix("rlm_"),
        "python_wheel_task": {
            "package_name": PACKAGE_NAME,
            "entry_point": ENTRY_POINTS[key],
            "parameters": list(TASK_ARGV[key]),
        },
        **task_compute,
    }
    if key == EXECUTOR:
        task["max_retries"] = 0  # the orchestrator decides what a failed cell means
    job: dict[str, object] = {
        "name": JOB_NAMES[key],
        "description": _DESCRIPTIONS[key],
        "tags": {"rlm_job": key.removeprefix("rlm_"), "rlm_bundle": "${bundle.name}"},
        "max_concurrent_runs": {ORCHESTRATOR: 10, EXECUTOR: 100, INGESTOR: 1}[key],
        "parameters": [{"name": n, "default": d} for n, d in PARAMETERS[key]],
        "tasks": [task],
        **job_compute,
    }
    if key == INGESTOR:
        job["schedule"] = {
            "quartz_cron_expression": INGEST_SCHEDULE,
            "timezone_id": "UTC",
            "pause_status": "PAUSED",
        }
    return job


def _variables(options: BundleOptions) -> dict[str, object]:
    values: dict[str, tuple[str, str]] = {
        "catalog": ("Unity Catalog catalog of the jobs' tables and Volume", options.catalog),
        "schema": ("schema of the jobs' tables and of the artifacts Volume", options.schema),
        "model": ("the root model, e.g. databricks/<serving endpoint>", options.model),
        "secret_scope": ("secret scope of provider keys and the jobs' ids", options.secret_scope),
        "ingest_source": ("the ingestor's task source (delta:, jira: or dir:)", options.source),
    }
    if options.compute == "cluster":
        values["cluster_id"] = ("the existing cluster every task runs on", options.cluster_id)
    if options.compute == "job-cluster":
        values["spark_version"] = ("Databricks Runtime of the job clusters", options.spark_version)
        values["node_type_id"] = ("node type of the job clusters", options.node_type_id)
    return {name: {"description": text, "default": value} for name, (text, value) in values.items()}


def _targets(options: BundleOptions) -> dict[str, object]:
    """``dev`` (the default: names prefixed, schedules paused) and ``prod``."""
    host = {"host": options.host} if options.host else {}
    dev: dict[str, object] = {"mode": "development", "default": True}
    if host:
        dev["workspace"] = dict(host)
    root = "/Workspace/Users/${workspace.current_user.userName}/.bundle/${bundle.name}/"
    prod: dict[str, object] = {
        "mode": "production",
        "workspace": {**host, "root_path": root + "${bundle.target}"},
        "permissions": [{"user_name": "${workspace.current_user.userName}", "level": "CAN_MANAGE"}],
    }
    return {"dev": dev, "prod": prod}


def bundle_document(options: BundleOptions) -> dict[str, object]:
    """``databricks.yml``: the bundle, its variables, targets, and the resource files."""
    return {
        "bundle": {"name": options.bundle_name},
        "include": ["resources/*.yml"],
        "variables": _variables(options),
        "targets": _targets(options),
    }


def resource_path(key: str) -> str:
    return f"resources/{key}.job.yml"


def bundle_files(options: BundleOptions) -> dict[str, dict[str, object]]:
    """Relative path -> document, for every file of the bundle."""
    options = options.validated()
    files: dict[str, dict[str, object]] = {"databricks.yml": bundle_document(options)}
    for key in JOB_KEYS:
        files[resource_path(key)] = {"resources": {"jobs": {key: job_resource(key, options)}}}
    return files


_HEADER = (
    "Written by `rlm databricks init` (rlm-engine). Deploy with `rlm databricks deploy`;\n"
    "check the workspace with `rlm databricks check`. See docs/databricks.md."
)


def write_bundle(directory: Path, options: BundleOptions, *, force: bool = False) -> list[Path]:
    """Write the bundle's files under ``directory``; existing files are kept unless
    ``force`` (a `ConfigurationError` names them)."""
    files = bundle_files(options)
    targets = {directory / rel: doc for rel, doc in files.items()}
    existing = [path for path in targets if path.exists()]
    if existing and not force:
        names = ", ".join(str(p) for p in existing)
        raise ConfigurationError(
            f"the bundle's files exist already: {names}",
            hint="pass --force to overwrite them, or --dir DIR to write the bundle elsewhere",
        )
    written: list[Path] = []
    for path, doc in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump(doc, header=_HEADER), encoding="utf-8")
        written.append(path)
    gitignore = directory / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(".databricks/\ndist/\n", encoding="utf-8")
        written.append(gitignore)
    return written
