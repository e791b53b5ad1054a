"""`JobSettings`: the parameters every lakehouse job takes, from flags and the environment.

A job is started by a scheduler that passes parameters either as flags or as variables, so
each parameter has both: the flag wins, then the ``RLM_*`` variable, then the name the
source design's deployments set (``ADK_*``), then the default. The environment is read
only when `JobSettings.from_env` is called, never at import.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast, get_args

from rlm_engine.errors import ConfigurationError

if TYPE_CHECKING:
    from rlm_engine.integrations.delta_lake import Lakehouse

JobMode = Literal["local", "databricks"]
MODES: tuple[str, ...] = get_args(JobMode)

DEFAULT_CATALOG = "rlm"
DEFAULT_SCHEMA = "jobs"
DEFAULT_SESSION_ID = "session_001"
DEFAULT_USER_ID = "job_user"
DEFAULT_PROMPT_FILENAME = "task.txt"
LAKEHOUSE_DIR = "lakehouse"
DEFAULT_SECRET_SCOPE = "rlm-secrets"

# field -> (our variable, the source design's alias or None). The alias is read only when
# our variable is unset or empty, so a platform's generic export never overrides ours.
ENV_NAMES: Mapping[str, tuple[str, str | None]] = {
    "mode": ("RLM_JOBS_MODE", None),
    "catalog": ("RLM_CATALOG", "ADK_DELTA_CATALOG"),
    "schema": ("RLM_SCHEMA", "ADK_DELTA_SCHEMA"),
    "lakehouse": ("RLM_LAKEHOUSE", None),
    "session_id": ("RLM_SESSION_ID", "ADK_SESSION_ID"),
    "user_id": ("RLM_USER_ID", "ADK_USER_ID"),
    "max_iterations": ("RLM_MAX_ITERATIONS", "ADK_MAX_ITERATIONS"),
    "prompt": ("RLM_PROMPT", "ADK_PROMPT"),
    "prompt_file": ("RLM_PROMPT_FILE", "ADK_PROMPT_FILE"),
    "default_prompt_file": ("RLM_DEFAULT_PROMPT_FILE", None),
    "executor_job_id": ("RLM_EXECUTOR_JOB_ID", "ADK_EXECUTOR_JOB_ID"),
    "orchestrator_job_id": ("RLM_ORCHESTRATOR_JOB_ID", "ADK_ORCHESTRATOR_JOB_ID"),
    "secret_scope": ("RLM_SECRET_SCOPE", "ADK_SECRET_SCOPE"),
}

# field -> the flag that sets it (the argparse ``dest`` is the field's name).
FLAGS: Mapping[str, str] = {
    "mode": "--mode",
    "catalog": "--catalog",
    "schema": "--schema",
    "lakehouse": "--lakehouse",
    "session_id": "--session-id",
    "user_id": "--user-id",
    "max_iterations": "--max-iterations",
    "prompt": "--prompt",
    "prompt_file": "--prompt-file",
    "executor_job_id": "--executor-job-id",
    "orchestrator_job_id": "--orchestrator-job-id",
    "secret_scope": "--secret-scope",
}


@dataclass(frozen=True, slots=True)
class JobSettings:
    """One job's parameters as plain values (see `ENV_NAMES` and `FLAGS`)."""

    home: Path
    """``RLM_HOME``: where local mode keeps the store and, by default, the lakehouse."""
    mode: JobMode = "local"
    catalog: str = DEFAULT_CATALOG
    schema: str = DEFAULT_SCHEMA
    lakehouse: str | None = None
    """Root of the lakehouse tables (a directory or an object-store URI); None: the local
    default, ``RLM_HOME/lakehouse/<catalog>/<schema>``."""
    session_id: str = DEFAULT_SESSION_ID
    user_id: str = DEFAULT_USER_ID
    max_iterations: int | None = None
    """None: the engine's default."""
    prompt: str = ""
    prompt_file: str | None = None
    default_prompt_file: str = ""
    """Read when neither a prompt nor a prompt file is given ("": ``RLM_HOME/task.txt``)."""
    executor_job_id: str | None = None
    orchestrator_job_id: str | None = None
    secret_scope: str = DEFAULT_SECRET_SCOPE
    """Databricks mode: the secret scope each job loads its secrets from, at its edge."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JobSettings:
        """The settings the variables give (``RLM_*`` over ``ADK_*`` over defaults)."""
        env = os.environ if environ is None else environ
        home = Path(env.get("RLM_HOME") or Path.home() / ".rlm").expanduser()
        values: dict[str, object] = {}
        for name, (ours, alias) in ENV_NAMES.items():
            found = _variable(env, ours, alias)
            if found is not None:
                values[name] = _parsed(name, found[0], found[1])
        settings = cls(home=home, **values)  # pyright: ignore[reportArgumentType]
        if not settings.default_prompt_file:
            default = str(home / DEFAULT_PROMPT_FILENAME)
            settings = dataclasses.replace(settings, default_prompt_file=default)
        return settings

    def with_flags(self, args: argparse.Namespace) -> JobSettings:
        """These settings with every flag that was given (not None) put over them."""
        given: dict[str, object] = {}
        for name, flag in FLAGS.items():
            value: object = getattr(args, name, None)
            if value is None or (name == "prompt" and not str(value).strip()):
                continue  # an empty prompt is no prompt: the file decides (seed order)
            if isinstance(value, str):
                value = _parsed(name, flag, value)
            given[name] = value
        return dataclasses.replace(self, **given)  # pyright: ignore[reportArgumentType]

    @property
    def lakehouse_root(self) -> str:
        """Where the tables live: `lakehouse`, else the local default under ``RLM_HOME``."""
        if self.lakehouse:
            return self.lakehouse
        return str(self.home / LAKEHOUSE_DIR / self.catalog / self.schema)

    def lake(self) -> Lakehouse:
        """The lakehouse these settings name (needs the ``delta`` extra)."""
        from rlm_engine.integrations.delta_lake import Lakehouse

        return Lakehouse(self.lakehouse_root)

    def require_databricks_job(self, field: str) -> int:
        """The Databricks job id ``field`` names (``executor_job_id`` or
        ``orchestrator_job_id``) as a number; `ConfigurationError` if unset or not one."""
        value = getattr(self, field)
        flag = FLAGS[field]
        variable = ENV_NAMES[field][0]
        if not value:
            raise ConfigurationError(
                f"databricks mode needs {flag} (the job it triggers)",
                hint=f"give {flag} ID or set {variable}; rlm databricks deploy stores the ids",
            )
        try:
            return int(str(value))
        except ValueError:
            raise ConfigurationError(
                f"{flag}={value!r} is not a Databricks job id", hint="a job id is a number"
            ) from None

    def require_local(self) -> None:
        """Refuse a mode this version cannot run (Databricks is the next step)."""
        if self.mode != "local":
            raise ConfigurationError(
                f"job mode {self.mode!r} is not available in this version: only 'local' runs "
                "the jobs (processes on this machine, tables under RLM_HOME or --lakehouse)",
                hint="use --mode local (or unset RLM_JOBS_MODE); give --lakehouse URI to keep "
                "the tables in object storage",
            )


def _variable(env: Mapping[str, str], ours: str, alias: str | None) -> tuple[str, str] | None:
    """The variable that sets a parameter and its value (ours first); None if neither is."""
    for name in (ours, alias):
        if name is not None and env.get(name, "").strip():
            return name, env[name]
    return None


def _parsed(name: str, source: str, text: str) -> object:
    """``text`` (from the variable or flag ``source``) as the field ``name``'s type."""
    if name == "prompt":
        return text  # a literal prompt keeps its whitespace
    value = text.strip()
    if name == "mode":
        if value not in MODES:
            raise ConfigurationError(
                f"{source}={value!r} is not a job mode",
                hint=f"give one of: {', '.join(MODES)}",
            )
        return cast(JobMode, value)
    if name == "max_iterations":
        try:
            number = int(value.replace("_", ""))
        except ValueError:
            number = 0
        if number < 1:
            raise ConfigurationError(
                f"{source}={value!r} is not a whole number of at least 1",
                hint=f"set {source} to the most root turns a run may take, e.g. 10",
            )
        return number
    if not value:
        raise ConfigurationError(
            f"{source} is empty", hint=f"give {source} a value, or leave it out for the default"
        )
    return value
