"""Running `rlm` in a subprocess against the simulator on loopback, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from rlm_engine.sim.policies import message_text


def is_root(messages: list[dict[str, Any]]) -> bool:
    """Whether a request is the root model's (its system prompt opens the conversation)."""
    return bool(messages) and message_text(messages[0]).startswith("You answer a question")


def turn(messages: list[dict[str, Any]]) -> int:
    """How many replies the model has given in this conversation so far."""
    return sum(1 for m in messages if m.get("role") == "assistant")


def cli(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlm_engine.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        **kw,
    )


def cli_env(tmp_path: Path, url: str) -> dict[str, str]:
    """This environment without provider or rlm settings, pointed at ``url`` and a
    fresh RLM_HOME under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "RLM_"))}
    env.update(OPENAI_BASE_URL=url, RLM_HOME=str(tmp_path / "home"))
    return env
