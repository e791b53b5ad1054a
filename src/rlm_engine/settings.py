"""The one place that reads the environment. Everything below it takes plain values."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rlm_engine.errors import ConfigurationError

DEFAULT_MAX_CONTEXT_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_CONCURRENT_RUNS = 8
DEFAULT_TENANT_CONCURRENT_RUNS = 4
# A server (HTTP or MCP) keeps this many sandboxes started per kind of sandbox its runs use,
# so a run's first cell does not wait for an interpreter to start.
DEFAULT_WARM_POOL = 2

# Names the source design's deployments already set, accepted as aliases of ours. The
# `RLM_*` name wins when both are set, so a project's own setting is never overridden by a
# generic variable a platform happens to export (`DATABASE_URL` on most PaaS hosts).
ALIASES: Mapping[str, str] = {
    "RLM_STORE_URL": "DATABASE_URL",
    "RLM_MODEL": "DEFAULT_MODEL",
    "RLM_MAX_CONTEXT_BYTES": "MAX_CONTEXT_SIZE",
    "RLM_MAX_DEPTH": "MAX_RECURSION_DEPTH",
    "RLM_EXECUTION_TIMEOUT": "EXECUTION_TIMEOUT",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Settings read at the edges (CLI, server, jobs) and passed down as plain values."""

    home: Path
    model: str | None = None
    sub_model: str | None = None
    store_url: str | None = None
    plugins: tuple[str, ...] = ()
    """Entry-point plugin names from ``RLM_PLUGINS`` (comma-separated)."""
    instructions: str = ""
    """House rules for the root prompt from ``RLM_INSTRUCTIONS``."""
    env: Mapping[str, str] = field(default_factory=dict[str, str])
    allowed_paths: tuple[Path, ...] = ()
    """Server-side directories a session may be created from (``RLM_ALLOWED_PATHS``,
    `os.pathsep`-separated); none by default, so a server reads no path it was not given."""
    cors_origins: tuple[str, ...] = ()
    """Browser origins the server answers (``RLM_CORS_ORIGINS``, comma-separated)."""
    warm_pool: int | None = None
    """Sandboxes kept started ahead of runs (``RLM_WARM_POOL``); None: the serving
    process's default (`DEFAULT_WARM_POOL`)."""
    max_context_bytes: int = DEFAULT_MAX_CONTEXT_BYTES
    """Largest context a tenant may upload (``RLM_MAX_CONTEXT_BYTES``)."""
    max_depth: int | None = None
    """Deepest child RLM any run may spawn (``RLM_MAX_DEPTH``); None: the run's own."""
    execution_timeout_s: float | None = None
    """Wall-clock limit of every run (``RLM_EXECUTION_TIMEOUT``, seconds)."""
    max_concurrent_runs: int = DEFAULT_MAX_CONCURRENT_RUNS
    """Runs one process executes at once (``RLM_MAX_CONCURRENT_RUNS``)."""
    tenant_concurrent_runs: int = DEFAULT_TENANT_CONCURRENT_RUNS
    """Runs of one tenant executing at once (``RLM_TENANT_CONCURRENT_RUNS``)."""
    daily_budget_usd: float | None = None
    """Known cost a tenant may spend per UTC day (``RLM_DAILY_BUDGET_USD``); None: no cap."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("RLM_HOME") or Path.home() / ".rlm").expanduser()
        return cls(
            home=home,
            model=_read(env, "RLM_MODEL"),
            sub_model=env.get("RLM_SUB_MODEL") or None,
            store_url=_read(env, "RLM_STORE_URL"),
            plugins=_split(env.get("RLM_PLUGINS", ""), ","),
            instructions=env.get("RLM_INSTRUCTIONS", ""),
            env=env,
            allowed_paths=tuple(
                Path(p).expanduser() for p in _split(env.get("RLM_ALLOWED_PATHS", ""), os.pathsep)
            ),
            cors_origins=_split(env.get("RLM_CORS_ORIGINS", ""), ","),
            warm_pool=_integer(env, "RLM_WARM_POOL", minimum=0),
            max_context_bytes=_integer(env, "RLM_MAX_CONTEXT_BYTES", minimum=1)
            or DEFAULT_MAX_CONTEXT_BYTES,
            max_depth=_integer(env, "RLM_MAX_DEPTH", minimum=0),
            execution_timeout_s=_number(env, "RLM_EXECUTION_TIMEOUT", minimum=0.001),
            max_concurrent_runs=_integer(env, "RLM_MAX_CONCURRENT_RUNS", minimum=1)
            or DEFAULT_MAX_CONCURRENT_RUNS,
            tenant_concurrent_runs=_integer(env, "RLM_TENANT_CONCURRENT_RUNS", minimum=1)
            or DEFAULT_TENANT_CONCURRENT_RUNS,
            daily_budget_usd=_number(env, "RLM_DAILY_BUDGET_USD", minimum=0.0),
        )


def _split(text: str, sep: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(sep) if part.strip())


def _named(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """The variable that sets ``name`` (it, else its alias) and its value; None if unset."""
    for var in (name, ALIASES.get(name)):
        if var is not None and env.get(var, "").strip():
            return var, env[var].strip()
    return None


def _read(env: Mapping[str, str], name: str) -> str | None:
    found = _named(env, name)
    return found[1] if found else None


def _number(env: Mapping[str, str], name: str, *, minimum: float) -> float | None:
    """The number ``name`` (or its alias) is set to, at least ``minimum``; None if unset."""
    found = _named(env, name)
    if found is None:
        return None
    var, text = found
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = math.nan
    if not value >= minimum:  # NaN fails too
        raise ConfigurationError(
            f"{var}={text!r} is not a number of at least {minimum:g}",
            hint=f"set {var} to a number of at least {minimum:g}, or unset it",
        )
    return value


def _integer(env: Mapping[str, str], name: str, *, minimum: int) -> int | None:
    value = _number(env, name, minimum=minimum)
    if value is None:
        return None
    if not value.is_integer():
        var = _named(env, name) or (name, "")
        raise ConfigurationError(
            f"{var[0]}={var[1]!r} is not a whole number",
            hint=f"set {var[0]} to a whole number of at least {minimum}, or unset it",
        )
    return int(value)
