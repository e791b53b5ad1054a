"""Running `rlm-orchestrator` in a subprocess against the simulator, and reading the
lakehouse tables it writes, for the orchestrator tests."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from rlm_engine.sim.policies import message_text

ORCHESTRATOR = [sys.executable, "-m", "rlm_engine.jobs.orchestrator"]


def is_root(messages: list[dict[str, Any]]) -> bool:
    """Whether a request is the root model's (its system prompt opens the conversation)."""
    return bool(messages) and message_text(messages[0]).startswith("You answer a question")


def turn(messages: list[dict[str, Any]]) -> int:
    """How many replies the model has given in this conversation so far."""
    return sum(1 for m in messages if m.get("role") == "assistant")


def job_env(tmp_path: Path, url: str) -> dict[str, str]:
    """This environment without provider, rlm or source-design settings, pointed at the
    simulator ``url`` and a fresh RLM_HOME under ``tmp_path``."""
    drop = ("OPENAI", "RLM_", "ADK_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(OPENAI_BASE_URL=url, RLM_HOME=str(tmp_path / "home"))
    return env


def orchestrate(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ORCHESTRATOR, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def lakehouse(tmp_path: Path) -> Path:
    """The local default root of the tables (catalog rlm, schema jobs)."""
    return tmp_path / "home" / "lakehouse" / "rlm" / "jobs"


def table_rows(root: Path, table: str) -> list[dict[str, Any]]:
    """Every row of a Delta table, read with deltalake (any reader would do). The Arrow
    objects are collected before returning: delta-rs aborts an interpreter that still holds
    them at exit."""
    from deltalake import DeltaTable

    reader: Any = DeltaTable(str(root / table))  # pyarrow has no type stubs
    arrow = reader.to_pyarrow_table()
    rows: list[dict[str, Any]] = arrow.to_pylist()
    del arrow, reader
    gc.collect()
    return rows
