"""What ``--mode databricks`` puts under the three jobs.

For one `JobSettings` it builds: the workspace client (the SDK's standard auth), the tables
(``{catalog}.{schema}.*`` in Unity Catalog, through a SQL warehouse), the artifacts' files
(the Volume ``/Volumes/{catalog}/{schema}/artifacts``), the orchestrator's artifact sandbox
factory (each cell a ``run_now`` of the executor job, `RemoteExecutor`), the executor's
side (the artifact's files staged from the Volume, its cell's sub-calls through Model
Serving, `ServingHandler`, and ``spark`` when the cluster has it) and the ingestor's
trigger (a ``run_now`` of the orchestrator job, `DatabricksTrigger`).

Secrets are loaded from the job's secret scope at the edge of each job, into the job's own
environment (the process's, never a sandbox's: the executors get a minimal environment and
the sandbox a smaller one), and a redactor keeps their values out of the logs.

A run's spec names its artifact store as ``databricks:CATALOG/SCHEMA/EXECUTOR_JOB_ID``
(`artifact_root`), so a resumed run rebuilds the same factory from its stored spec.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, cast

from rlm_engine.errors import ConfigurationError

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

    from rlm_engine.engine.state import SandboxFactory
    from rlm_engine.integrations.tables import TableStore
    from rlm_engine.jobs.artifact_files import VolumeArtifactFiles
    from rlm_engine.jobs.artifacts import ArtifactRegistry
    from rlm_engine.jobs.settings import JobSettings
    from rlm_engine.jobs.triggers import DatabricksTrigger
    from rlm_engine.service.spec import RunSpec

ROOT_PREFIX = "databricks:"
ARTIFACTS_VOLUME = "artifacts"
PROMPT_NOTE = (
    "Your cells run as Databricks job runs: llm_query and llm_query_batched reach models "
    "through Model Serving; rlm_query, memory and tools are not available inside a cell. "
    "`spark` is defined when the executor's cluster has Spark (check `'spark' in dir()`); "
    "spark.stop() does nothing."
)


def workspace(settings: JobSettings | None = None) -> WorkspaceClient:
    """The workspace client (DATABRICKS_HOST/TOKEN, a profile, OAuth or the job's identity)."""
    from rlm_engine.integrations.databricks.workspace import workspace_client

    del settings
    return workspace_client()


def volume_root(catalog: str, schema: str) -> str:
    return f"/Volumes/{catalog}/{schema}/{ARTIFACTS_VOLUME}"


def tables(client: WorkspaceClient, catalog: str, schema: str) -> TableStore:
    """The Unity Catalog tables ``catalog.schema.*``, used where the jobs use a lakehouse."""
    from rlm_engine.integrations.databricks.sql import SqlWarehouse
    from rlm_engine.integrations.databricks.uc_tables import UnityCatalogTables

    return UnityCatalogTables(SqlWarehouse(client), catalog, schema)


def artifact_files(client: WorkspaceClient, catalog: str, schema: str) -> VolumeArtifactFiles:
    from rlm_engine.jobs.artifact_files import VolumeArtifactFiles

    return VolumeArtifactFiles(client, volume_root(catalog, schema))


def registry(client: WorkspaceClient, catalog: str, schema: str) -> ArtifactRegistry:
    from rlm_engine.jobs.artifacts import ArtifactRegistry

    lake = tables(client, catalog, schema)
    return ArtifactRegistry(lake, files=artifact_files(client, catalog, schema))


def load_job_secrets(
    client: WorkspaceClient, scope: str, environ: MutableMapping[str, str] | None = None
) -> dict[str, str]:
    """Every secret of ``scope`` into the job's environment under its key's name (a
    variable already set wins), with the redactor told each value. Returns what was set
    (name -> value) for the caller to keep out of anything it writes."""
    from rlm_engine.integrations.databricks.secrets import load_secrets

    env = os.environ if environ is None else environ
    keys = _scope_keys(client, scope)
    if not keys:
        return {}
    loaded = load_secrets(client, scope, keys)
    added: dict[str, str] = {}
    for name, value in loaded.items():
        if not env.get(name):
            env[name] = value
            added[name] = value
    return added


def _scope_keys(client: WorkspaceClient, scope: str) -> list[str]:
    """The scope's keys that can name a variable; [] when the scope does not exist."""
    from databricks.sdk.errors import NotFound

    from rlm_engine.integrations.databricks.workspace import workspace_error

    try:
        listed = list(client.secrets.list_secrets(scope))
    except NotFound:
        return []  # no scope: nothing to load (rlm databricks check says it is missing)
    except Exception as exc:
        raise workspace_error(exc, f"listing the secret scope {scope!r}") from None
    return [s.key for s in listed if s.key and s.key.replace("_", "a").isalnum()]


# -- the orchestrator --------------------------------------------------------------------


def artifact_root(settings: JobSettings) -> str:
    """What a run's spec keeps as its artifact store in Databricks mode."""
    job_id = settings.require_databricks_job("executor_job_id")
    return f"{ROOT_PREFIX}{settings.catalog}/{settings.schema}/{job_id}"


def parse_root(root: str) -> tuple[str, str, int]:
    """(catalog, schema, executor job id) of an `artifact_root`."""
    parts = root.removeprefix(ROOT_PREFIX).split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        raise ConfigurationError(
            f"{root!r} is not a Databricks artifact store",
            hint="it reads databricks:CATALOG/SCHEMA/EXECUTOR_JOB_ID",
        )
    return parts[0], parts[1], int(parts[2])


def serving_model(spec: RunSpec) -> str | None:
    """The endpoint the executor's cells ask: the run's sub-model, else its model, when it
    is a serving endpoint (``databricks/...``)."""
    for name in (spec.sub_model, spec.model):
        if name and name.startswith("databricks/"):
            return name
    return None


def with_prompt_note(spec: RunSpec) -> RunSpec:
    """The spec with the note on what a cell can use in Databricks mode."""
    import dataclasses

    text = f"{spec.instructions}\n\n{PROMPT_NOTE}" if spec.instructions else PROMPT_NOTE
    return dataclasses.replace(spec, instructions=text)


def artifact_factory(spec: RunSpec, root: str, run_id: str, session_id: str) -> SandboxFactory:
    """The orchestrator's sandboxes in Databricks mode: every cell an artifact in the
    Volume and the UC registry, run by a ``run_now`` of the executor job."""
    from rlm_engine.jobs.artifact_sandbox import ArtifactSandboxFactory
    from rlm_engine.jobs.remote_executor import RemoteExecutor
    from rlm_engine.jobs.serving_handler import SERVING_MODEL_KEY

    catalog, schema, job_id = parse_root(root)
    client = workspace()
    launcher = RemoteExecutor(client, job_id, catalog=catalog, schema=schema, session_id=session_id)
    return ArtifactSandboxFactory(
        registry(client, catalog, schema),
        run_id=run_id,
        session_id=session_id,
        isolation=spec.isolation,
        memory_mb=spec.memory_mb,
        launcher=launcher,
        metadata={SERVING_MODEL_KEY: serving_model(spec)},
    )


# -- the executor ------------------------------------------------------------------------


def run_databricks_executor(
    settings: JobSettings, artifact_id: str, *, timeout_s: float | None = None
) -> int:
    """``rlm-executor --mode databricks``: the artifact from the UC registry and the Volume,
    run in this cluster's local sandbox, its sub-calls through Model Serving."""
    from rlm_engine.jobs.artifact_files import download_context
    from rlm_engine.jobs.executor import execute_artifact
    from rlm_engine.jobs.serving_handler import SERVING_MODEL_KEY, ServingHandler
    from rlm_engine.jobs.spark_session import SPARK_KEY, spark_importable

    client = workspace(settings)
    reg = registry(client, settings.catalog, settings.schema)
    found = reg.get(artifact_id)
    default_model = found.metadata.get(SERVING_MODEL_KEY) if found is not None else None
    handler = ServingHandler(
        default_model if isinstance(default_model, str) else None, _model_env(os.environ)
    )
    spark = spark_importable()

    def prepare(meta: dict[str, Any], folder: Any) -> dict[str, Any]:
        context = meta.get("context") or {"kind": "none"}
        staged = download_context(reg.files, cast(dict[str, Any], context), folder)
        return {**meta, "context": staged, SPARK_KEY: spark}

    return execute_artifact(
        reg, artifact_id, timeout_s=timeout_s, handler=handler, prepare_meta=prepare
    )


def _model_env(environ: Mapping[str, str]) -> dict[str, str]:
    """What the serving adapter reads: the workspace and the request settings only."""
    return {k: v for k, v in environ.items() if k.startswith(("DATABRICKS_", "RLM_REQUEST"))}


# -- the ingestor ------------------------------------------------------------------------


def trigger(
    settings: JobSettings, client: WorkspaceClient, *, model: str | None
) -> DatabricksTrigger:
    from rlm_engine.jobs.triggers import DatabricksTrigger

    job_id = settings.require_databricks_job("orchestrator_job_id")
    return DatabricksTrigger(client, job_id, model=model)


def passed_model(extra: list[str]) -> str | None:
    """The ``--model`` among the flags given to the ingestor for its runs: the only one a
    job run takes as a parameter (the others belong in the orchestrator job's own
    parameters, where the bundle puts them)."""
    model: str | None = None
    rest: list[str] = []
    items = iter(extra)
    for arg in items:
        if arg == "--model":
            model = next(items, None)
        elif arg.startswith("--model="):
            model = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if rest:
        raise ConfigurationError(
            f"in databricks mode the ingestor passes only --model to the orchestrator job, "
            f"not {' '.join(rest)}",
            hint="set the other orchestrator flags in the orchestrator job's parameters "
            "(resources/*.yml of the bundle)",
        )
    return model or None
