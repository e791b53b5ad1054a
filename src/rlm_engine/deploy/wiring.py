"""After a deploy: find the three jobs, keep their ids in the secret scope, wire them.

The ids are found by name through the Jobs API (a development target prefixes the names
with ``[dev USER] ``, so that form is accepted too, the current user's first). The
orchestrator's ``RLM_EXECUTOR_JOB_ID`` and the ingestor's ``RLM_ORCHESTRATOR_JOB_ID``
defaults are then set with a partial update (``jobs/update``, only ``parameters``), which
leaves every other setting as the bundle made it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlm_engine.deploy.bundle import JOB_KEYS, JOB_NAMES, SECRET_KEYS, WIRING
from rlm_engine.errors import ConfigurationError

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient


@dataclass(frozen=True, slots=True)
class Rewired:
    """One job parameter set to another job's id (``before`` its old default)."""

    job: str
    parameter: str
    before: str
    after: str


def _dev_name(name: str, candidate: str) -> bool:
    return candidate.startswith("[dev ") and candidate.endswith(f"] {name}")


def find_job_id(w: WorkspaceClient, key: str, user: str = "") -> int:
    """The id of the job the bundle names ``JOB_NAMES[key]`` (or its dev-prefixed name)."""
    name = JOB_NAMES[key]
    exact = [job.job_id for job in w.jobs.list(name=name) if job.job_id is not None]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        raise ConfigurationError(
            f"{len(exact)} jobs are named {name!r} (ids {', '.join(map(str, exact))})",
            hint="delete the ones the bundle does not own (`databricks jobs delete ID`)",
        )
    dev = [
        job
        for job in w.jobs.list()
        if job.job_id is not None and job.settings and _dev_name(name, job.settings.name or "")
    ]
    mine = [job for job in dev if user and job.creator_user_name == user] or dev
    if len(mine) == 1 and mine[0].job_id is not None:
        return mine[0].job_id
    if not mine:
        raise ConfigurationError(
            f"no job named {name!r} in the workspace",
            hint="deploy the bundle first (`rlm databricks deploy` without --skip-deploy)",
        )
    ids = ", ".join(str(job.job_id) for job in mine)
    raise ConfigurationError(
        f"several development jobs are named like {name!r} (ids {ids})",
        hint="deploy with --target prod, or delete the stale copies",
    )


def resolve_job_ids(w: WorkspaceClient, user: str = "") -> dict[str, int]:
    """Bundle key -> job id, for the three jobs."""
    return {key: find_job_id(w, key, user) for key in JOB_KEYS}


def store_job_ids(w: WorkspaceClient, scope: str, ids: Mapping[str, int]) -> bool:
    """Put the ids in ``scope`` (created when missing); True when the scope was created."""
    scopes = {s.name for s in w.secrets.list_scopes()}
    created = scope not in scopes
    if created:
        w.secrets.create_scope(scope)
    for key, job_id in ids.items():
        w.secrets.put_secret(scope, SECRET_KEYS[key], string_value=str(job_id))
    return created


def wire_job_ids(w: WorkspaceClient, ids: Mapping[str, int]) -> list[Rewired]:
    """Set each wired parameter's default to the other job's id; returns what changed
    (an up-to-date parameter is left alone)."""
    from databricks.sdk.service.jobs import JobParameterDefinition, JobSettings

    changed: list[Rewired] = []
    for job_key, parameter, target_key in WIRING:
        settings = w.jobs.get(ids[job_key]).settings
        current = list(settings.parameters or []) if settings else []
        value = str(ids[target_key])
        before = next((p.default for p in current if p.name == parameter), None)
        if before == value:
            continue
        new = JobParameterDefinition(name=parameter, default=value)
        wired = [new if p.name == parameter else p for p in current]
        if before is None:
            wired.append(new)
        w.jobs.update(ids[job_key], new_settings=JobSettings(parameters=wired))
        changed.append(Rewired(job_key, parameter, before or "", value))
    return changed


def parameter_defaults(w: WorkspaceClient, job_id: int) -> dict[str, str]:
    """A deployed job's parameters and their defaults (bundle variables resolved)."""
    settings = w.jobs.get(job_id).settings
    params = (settings.parameters or []) if settings else []
    return {p.name: p.default for p in params}
