"""Helpers for the bundle and deploy tests: a bundle's jobs as a deploy would create them.

`resolved_job` substitutes the bundle references (``${var.X}``, ``${bundle.name}``,
``${resources.jobs.K.id}``) the way ``databricks bundle deploy`` does before it calls the
Jobs API; `create_jobs` creates the three jobs in a double through the real SDK.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from databricks.sdk import WorkspaceClient
from databricks.sdk.service.jobs import JobSettings

from rlm_engine.deploy.bundle import (
    EXECUTOR,
    INGESTOR,
    JOB_KEYS,
    ORCHESTRATOR,
    BundleOptions,
    bundle_document,
    job_resource,
    task_argv,
)

_REF = re.compile(r"\$\{([^}]+)\}")


def variables(options: BundleOptions) -> dict[str, str]:
    doc = bundle_document(options)
    declared: dict[str, Any] = doc["variables"]  # type: ignore[assignment]
    return {name: str(spec["default"]) for name, spec in declared.items()}


def resolve(value: Any, refs: Mapping[str, str]) -> Any:
    """``value`` with every ``${...}`` replaced from ``refs`` (a KeyError names a missing
    one, as the CLI's validation does)."""
    if isinstance(value, str):
        return _REF.sub(lambda m: refs[m.group(1)], value)
    if isinstance(value, list):
        return [resolve(item, refs) for item in value]
    if isinstance(value, dict):
        return {key: resolve(item, refs) for key, item in value.items()}
    return value


def references(options: BundleOptions, job_ids: Mapping[str, int | str]) -> dict[str, str]:
    refs = {f"var.{name}": value for name, value in variables(options).items()}
    refs["bundle.name"] = options.bundle_name
    refs.update({f"resources.jobs.{key}.id": str(job_id) for key, job_id in job_ids.items()})
    return refs


def resolved_job(key: str, options: BundleOptions, job_ids: Mapping[str, int | str]) -> dict:
    return resolve(job_resource(key, options), references(options, job_ids))


def create_job(w: WorkspaceClient, settings: dict[str, Any]) -> int:
    """Create a job from settings as the Jobs API takes them (through the SDK's types)."""
    typed = JobSettings.from_dict(settings)
    kwargs = {f.name: getattr(typed, f.name) for f in fields(typed)}
    created = w.jobs.create(**{k: v for k, v in kwargs.items() if v is not None})
    assert created.job_id is not None
    return created.job_id


def create_jobs(
    w: WorkspaceClient, options: BundleOptions, *, stale_ids: str = ""
) -> dict[str, int]:
    """The three jobs as a deploy that did not wire them leaves them: the wired parameters'
    defaults are ``stale_ids`` (what the seed's deploy script fixes afterwards)."""
    placeholder = dict.fromkeys(JOB_KEYS, stale_ids)
    ids: dict[str, int] = {}
    for key in (EXECUTOR, ORCHESTRATOR, INGESTOR):
        ids[key] = create_job(w, resolved_job(key, options, placeholder))
    return ids


STUB = Path(__file__).with_name("orchestrator_stub.py")


def orchestrator_argv(files_root: Path):
    """The orchestrator job's command in the double: the bundle's task command line, given
    to a stub that parses it with the real orchestrator parser and answers."""

    def argv_for(params: dict[str, str]) -> list[str]:
        return [sys.executable, str(STUB), str(files_root), *task_argv(ORCHESTRATOR, params)]

    return argv_for
