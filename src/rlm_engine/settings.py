"""The one place that reads the environment. Everything below it takes plain values."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("RLM_HOME") or Path.home() / ".rlm").expanduser()
        return cls(
            home=home,
            model=env.get("RLM_MODEL") or None,
            sub_model=env.get("RLM_SUB_MODEL") or None,
            store_url=env.get("RLM_STORE_URL") or None,
            plugins=tuple(p.strip() for p in env.get("RLM_PLUGINS", "").split(",") if p.strip()),
            instructions=env.get("RLM_INSTRUCTIONS", ""),
            env=env,
        )
